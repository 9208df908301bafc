#!/usr/bin/env python3
"""The Debian package: `cpack -G DEB` from the build folder, then checked
with dpkg-deb the way a user would receive it.

  - files: the three commands in /usr/bin, both systemd units, the sysusers
    file, /etc/scgi/scgi.toml and proxy.toml (both conffiles), the examples
    and the docs;
  - Depends names the package of every library the built binaries link
    (DT_NEEDED mapped with dpkg -S), so a newly linked library cannot be
    missed;
  - the maintainer scripts are valid sh and executable;
  - unpacked, the packaged binaries accept the packaged configurations
    (--check), with the user `scgi` made from the packaged sysusers file.

Usage: package_test.py CPACK BUILD_DIR SCGI_MANAGER SCGI_PROXY SCGICTL
"""
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from package_libraries import library_packages, package_names
from check_list import check, failures

SKIP = 77


def run(command, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


def check_config(root, binary, config, label, needs_user):
    """`--check` of the unpacked binary on the unpacked file. A pool may
    drop to user scgi, which the postinst creates on a real install: where
    it does not exist here, it is made from the packaged sysusers file into
    a copy of passwd/group, bind-mounted over /etc in a private mount
    namespace (root only) so nothing on this machine changes."""
    command = [os.path.join(root, binary.lstrip("/")), "--check", "--config",
               os.path.join(root, config.lstrip("/"))]
    if not needs_user or run(["getent", "passwd", "scgi"]).returncode == 0:
        result = run(command)
    elif os.geteuid() != 0 or shutil.which("unshare") is None:
        print(f"skipped: {label}: no user scgi here, and creating one needs root")
        return
    else:
        users = tempfile.mkdtemp(prefix="scgi-sysusers.")
        os.makedirs(os.path.join(users, "etc"))
        made = run(["systemd-sysusers", "--root", users,
                    os.path.join(root, "usr/lib/sysusers.d/scgi.conf")])
        check(made.returncode == 0, f"systemd-sysusers creates the package's user ({' '.join(made.stderr.split())})")
        for name in ("passwd", "group"):
            with open(f"/etc/{name}") as system, open(os.path.join(users, "etc", name)) as made_file, \
                    open(os.path.join(users, name), "w") as merged:
                merged.write(system.read() + made_file.read())
        script = ('set -e; mount --bind "$1/passwd" /etc/passwd; mount --bind "$1/group" /etc/group; '
                  'getent passwd scgi >/dev/null; getent group scgi >/dev/null; shift; exec "$@"')
        result = run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                      "sh", users] + command)
        shutil.rmtree(users, ignore_errors=True)
    check(result.returncode == 0,
          f"{label}: {binary} --check {config} exits 0 (exit {result.returncode}: "
          f"{(result.stdout + result.stderr).strip()})")


def main():
    cpack, build_dir, *binaries = sys.argv[1:]
    work = tempfile.mkdtemp(prefix="scgi-package.")
    try:
        made = run([cpack, "-G", "DEB", "--config", os.path.join(build_dir, "CPackConfig.cmake"),
                    "-B", work])
        debs = [name for name in os.listdir(work) if name.endswith(".deb")]
        if not check(made.returncode == 0 and len(debs) == 1,
                     f"cpack -G DEB makes one package ({debs}; exit {made.returncode})"):
            print(made.stdout + made.stderr)
            return 1
        deb = os.path.join(work, debs[0])
        print(f"package: {debs[0]}, {os.path.getsize(deb) // 1024} KiB")

        field = lambda name: run(["dpkg-deb", "-f", deb, name]).stdout.strip()
        check(field("Package") == "scgi-balancer", f"Package: {field('Package')}")
        contents = run(["dpkg-deb", "--contents", deb], check=True).stdout
        paths = {line.split()[5].removeprefix(".") for line in contents.splitlines()}
        expected = ["/usr/bin/scgi-manager", "/usr/bin/scgi-proxy", "/usr/bin/scgictl",
                    "/lib/systemd/system/scgi-manager.service",
                    "/lib/systemd/system/scgi-proxy.service",
                    "/usr/lib/sysusers.d/scgi.conf",
                    "/etc/scgi/scgi.toml", "/etc/scgi/proxy.toml",
                    "/usr/share/scgi-balancer/examples/scgi.toml",
                    "/usr/share/scgi-balancer/examples/hello.py",
                    "/usr/share/doc/scgi-balancer/README.md",
                    "/usr/share/doc/scgi-balancer/packaging.md"]
        for path in expected:
            check(path in paths, f"the package holds {path}")
        in_bin = sorted(p for p in paths if p.startswith("/usr/bin/") and p != "/usr/bin/")
        check(len(in_bin) == 3, f"/usr/bin holds the three commands only ({in_bin})")
        stray = sorted(p for p in paths if "__pycache__" in p or p.startswith("/usr/local"))
        check(not stray, f"nothing stray (__pycache__, /usr/local): {stray}")

        conffiles = run(["dpkg-deb", "--info", deb, "conffiles"]).stdout.split()
        for conffile in ("/etc/scgi/scgi.toml", "/etc/scgi/proxy.toml"):
            check(conffiles.count(conffile) == 1, f"{conffile} is a conffile once ({conffiles})")

        depends = field("Depends")
        print(f"Depends: {depends}")
        dependency_names = package_names(depends)
        try:
            needed = library_packages(binaries)
        except RuntimeError as error:
            check(False, str(error))
            needed = {}
        for soname, package in sorted(needed.items()):
            check(package in dependency_names, f"Depends has {package} (for {soname})")
        check("python3" in package_names(field("Recommends")),
              "Recommends python3 (the example pool's runtime)")

        control = os.path.join(work, "control")
        run(["dpkg-deb", "--control", deb, control], check=True)
        for script in ("postinst", "prerm", "postrm"):
            path = os.path.join(control, script)
            if check(os.path.isfile(path), f"{script} is in the package"):
                check(os.access(path, os.X_OK), f"{script} is executable")
                syntax = run(["sh", "-n", path])
                check(syntax.returncode == 0, f"{script} is valid sh {syntax.stderr.strip()}")
        with open(os.path.join(control, "postinst")) as postinst:
            check("/usr/lib/sysusers.d/scgi.conf" in postinst.read(),
                  "postinst creates the user from the packaged sysusers file")

        root = os.path.join(work, "root")
        run(["dpkg-deb", "-x", deb, root], check=True)
        with open(os.path.join(root, "etc/scgi/scgi.toml"), "rb") as config_file:
            config = tomllib.load(config_file)
        for pool in config.get("pool", []):
            for word in pool.get("command", []):
                if word.startswith("/"):
                    check(os.path.exists(os.path.join(root, word.lstrip("/"))) or os.path.exists(word),
                          f"pool {pool['name']}: {word} is in the package or on the system")
        check_config(root, "/usr/bin/scgi-manager", "/etc/scgi/scgi.toml", "manager", True)
        check_config(root, "/usr/bin/scgi-proxy", "/etc/scgi/proxy.toml", "proxy", False)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
