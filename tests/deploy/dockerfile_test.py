#!/usr/bin/env python3
"""deploy/docker/Dockerfile, checked without docker (which cannot run here):

  - multi-stage: a build stage and a runtime stage, both FROM Debian 12;
  - the build stage installs its toolchain with `scripts/install-deps.sh
    build`, like every developer machine and CI;
  - the runtime stage's apt-get install list holds the package of every
    shared library the built binaries link (DT_NEEDED, mapped with dpkg -S;
    libc6, libstdc++6 and libgcc-s1 come with the base image), and python3;
  - it ends as a non-root USER (uid 10001), with /run/scgi writable for it
    and CMD scgi-manager --config /etc/scgi/scgi.toml;
  - every file it COPYs from the context exists, and the configuration it
    installs passes scgi-manager --check;
  - what the runtime stage COPYs from the build stage's staging folder is
    there after `cmake --install` of this build into such a folder (so the
    image's layout follows the install rules).

Usage: dockerfile_test.py SOURCE_DIR BUILD_DIR SCGI_MANAGER SCGI_PROXY SCGICTL
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from package_libraries import library_packages
from check_list import check, failures

IN_BASE_IMAGE = {"libc6", "libstdc++6", "libgcc-s1"}
DEBIAN_12 = re.compile(r"^(docker\.io/)?(library/)?debian:(12|bookworm)(-slim)?(@sha256:[0-9a-f]+)?$")


def instructions(text):
    """[(KEYWORD, arguments)] with continuation lines joined, comments dropped."""
    result = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = pending + stripped
        pending = ""
        keyword, _, arguments = whole.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
    return result


def stages(parsed):
    """[{'image', 'name', 'steps': [(KEYWORD, arguments)]}] per FROM."""
    result = []
    for keyword, arguments in parsed:
        if keyword == "FROM":
            words = arguments.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            result.append({"image": words[0], "name": name, "steps": []})
        elif result:
            result[-1]["steps"].append((keyword, arguments))
    return result


def apt_installed(run_arguments):
    """Package names of every `apt-get install` in a RUN line."""
    names = []
    for command in re.split(r"&&|;|\|\|", run_arguments):
        words = shlex.split(command)
        if len(words) >= 2 and words[0] in ("apt-get", "apt") and "install" in words:
            after = words[words.index("install") + 1:]
            names += [w for w in after if not w.startswith("-")]
    return names


def main():
    source_dir, build_dir, manager, *binaries = sys.argv[1:]
    dockerfile = os.path.join(source_dir, "deploy/docker/Dockerfile")
    with open(dockerfile) as file:
        text = file.read()
    all_stages = stages(instructions(text))
    check(len(all_stages) >= 2, f"multi-stage ({len(all_stages)} stages)")
    for stage in all_stages:
        check(bool(DEBIAN_12.match(stage["image"])), f"FROM {stage['image']} is Debian 12")
    build, runtime = all_stages[0], all_stages[-1]
    build_runs = " && ".join(a for k, a in build["steps"] if k == "RUN")
    check(re.search(r"scripts/install-deps\.sh\s+build\b", build_runs) is not None,
          "the build stage installs with scripts/install-deps.sh build")
    check("cmake --build" in build_runs and "cmake --install" in build_runs,
          "the build stage builds and installs with CMake")

    copied_from_build = [a for k, a in runtime["steps"]
                         if k == "COPY" and f"--from={build['name']}" in a]
    check(build["name"] is not None and len(copied_from_build) > 0,
          f"the runtime stage copies the build stage's output ({len(copied_from_build)} COPY)")
    check(any("/usr/bin/" in a for a in copied_from_build), "the binaries go to /usr/bin")
    check(any("/usr/share/scgi-balancer/" in a for a in copied_from_build),
          "the examples go to /usr/share/scgi-balancer/")

    staging = re.search(r"DESTDIR=(\S+) cmake --install \S+ --prefix (\S+)", build_runs)
    if check(staging is not None, "the build stage stages with DESTDIR=... cmake --install"):
        stage_dir, prefix = staging.groups()
        stage = tempfile.mkdtemp(prefix="scgi-docker-stage.")
        try:
            result = subprocess.run(["cmake", "--install", build_dir, "--prefix", prefix],
                                    env=dict(os.environ, DESTDIR=stage), capture_output=True,
                                    text=True)
            check(result.returncode == 0, f"cmake --install into a staging folder "
                  f"({result.stderr.strip()[-300:]})")
            for arguments in copied_from_build:
                source = [w for w in arguments.split() if not w.startswith("--")][0]
                inside = os.path.relpath(source, stage_dir)
                check(not inside.startswith("..") and
                      os.path.exists(os.path.join(stage, inside)),
                      f"the build stage has {source} to copy")
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    installed = set()
    for keyword, arguments in runtime["steps"]:
        if keyword == "RUN":
            installed.update(apt_installed(arguments))
    print(f"runtime packages: {sorted(installed)}")
    try:
        needed = library_packages([manager] + binaries)
    except RuntimeError as error:
        check(False, str(error))
        needed = {}
    for soname, package in sorted(needed.items()):
        if package in IN_BASE_IMAGE:
            continue
        check(package in installed, f"the runtime stage installs {package} (for {soname})")
    check("python3" in installed, "the runtime stage installs python3 (the sample workers)")
    check(not installed & {"g++", "cmake", "ninja-build", "libfmt-dev"},
          "no build tool or -dev package in the runtime stage")

    runtime_runs = " && ".join(a for k, a in runtime["steps"] if k == "RUN")
    users = [a for k, a in runtime["steps"] if k == "USER"]
    last_user = users[-1].split(":")[0] if users else "root"
    check(last_user not in ("root", "0"), f"the image runs as a non-root USER ({last_user})")
    check(re.search(rf"useradd\b[^&;]*--uid 10001\b[^&;]*\b{re.escape(last_user)}\b",
                    runtime_runs) is not None,
          f"user {last_user} is created with uid 10001")
    check(re.search(r"install -d -o scgi -g scgi[^&;]*/run/scgi\b", runtime_runs) is not None,
          "/run/scgi is made and owned by scgi")
    env = " ".join(a for k, a in runtime["steps"] if k == "ENV")
    check("RUNTIME_DIRECTORY=/run/scgi" in env, "RUNTIME_DIRECTORY=/run/scgi")
    cmd = [a for k, a in runtime["steps"] if k == "CMD"]
    check(bool(cmd) and json.loads(cmd[-1]) == ["scgi-manager", "--config", "/etc/scgi/scgi.toml"],
          f"CMD scgi-manager --config /etc/scgi/scgi.toml ({cmd})")

    for stage in all_stages:
        for keyword, arguments in stage["steps"]:
            if keyword not in ("COPY", "ADD") or "--from=" in arguments:
                continue
            *sources, _destination = [w for w in arguments.split() if not w.startswith("--")]
            for source in sources:
                check(os.path.exists(os.path.join(source_dir, source)),
                      f"COPY source {source} exists")
    config_copy = [a.split() for k, a in runtime["steps"]
                   if k == "COPY" and a.split()[-1] == "/etc/scgi/scgi.toml"]
    if check(bool(config_copy), "the image gets /etc/scgi/scgi.toml"):
        config = os.path.join(source_dir, config_copy[-1][-2])
        result = subprocess.run([manager, "--check", "--config", config],
                                capture_output=True, text=True)
        check(result.returncode == 0, f"scgi-manager --check {config_copy[-1][-2]} exits 0 "
              f"({(result.stdout + result.stderr).strip()})")
        with open(config) as file:
            check(not re.search(r"^\s*(user|group)\s*=\s*\"[^\"]", file.read(), re.MULTILINE),
                  "its pools set no user/group (the manager is not root in the image)")
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
