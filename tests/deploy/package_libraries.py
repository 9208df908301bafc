"""The Debian packages that hold the shared libraries a binary links directly.

Shared by the .deb test and the Dockerfile test: both must name every one of
them (the .deb in its Depends, the image in its apt-get install list).
"""
import os
import re
import subprocess


def needed_sonames(binary):
    """DT_NEEDED entries: the libraries the binary itself asks for."""
    dump = subprocess.run(["objdump", "-p", binary], check=True, capture_output=True, text=True)
    return re.findall(r"^\s*NEEDED\s+(\S+)", dump.stdout, re.MULTILINE)


def resolved_paths(binary):
    """soname -> path, as the dynamic loader resolves them on this machine."""
    listing = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True)
    paths = {}
    for soname, path in re.findall(r"^\s*(\S+) => (/\S+)", listing.stdout, re.MULTILINE):
        paths[soname] = path
    return paths


def owning_package(path):
    """The package that installed `path` (None if none did). With merged /usr
    a library's path may be known to dpkg with or without /usr, before or
    after following links, so every spelling is tried."""
    candidates = []
    for spelling in (path, os.path.realpath(path)):
        candidates.append(spelling)
        if spelling.startswith("/usr/"):
            candidates.append(spelling[len("/usr"):])
        else:
            candidates.append("/usr" + spelling)
    for candidate in candidates:
        found = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if found.returncode == 0:
            # "libfmt9:amd64: /usr/lib/x86_64-linux-gnu/libfmt.so.9"
            return found.stdout.split(":", 1)[0].strip()
    return None


def library_packages(binaries):
    """{soname: package} over all binaries; raises naming what it cannot map."""
    result = {}
    problems = []
    for binary in binaries:
        paths = resolved_paths(binary)
        for soname in needed_sonames(binary):
            if soname in result:
                continue
            path = paths.get(soname)
            package = owning_package(path) if path else None
            if package is None:
                problems.append(f"{os.path.basename(binary)} needs {soname} "
                                f"({path or 'not found by ldd'}): no Debian package owns it")
            else:
                result[soname] = package
    if problems:
        raise RuntimeError("; ".join(problems))
    return result


def package_names(relation_field):
    """Names in a Depends-like field: "a (>= 1), b | c" -> {"a", "b", "c"}."""
    names = set()
    for clause in relation_field.split(","):
        for alternative in clause.split("|"):
            name = alternative.strip().split(" ", 1)[0].split(":", 1)[0]
            if name:
                names.add(name)
    return names
