"""A Debian 12 machine booted under its own systemd in a container, for tests
that install the package as a user would and drive its units for real.

  debian_root(): the root file system of `debootstrap --variant=minbase
    --include=systemd,systemd-sysv,dbus bookworm`, made once per machine in
    /var/cache/scgi-balancer-tests/, under a name keyed by those arguments.
    It is built in a temporary folder and renamed into place, so that an
    interrupted build never leaves a broken one; a lock keeps two builds
    apart. The packages come from the mirror this machine's apt uses.
  BootedDebian: that root booted with `systemd-nspawn -b --volatile=overlay`:
    every change goes to a tmpfs laid over it inside the container's own
    mount namespace, so the cached root is never written, one run cannot
    change the next, and nothing is left to remove, even after a crash.
    run() runs a command inside through nsenter; leaving the `with` powers
    the machine off (SIGTERM to nspawn, SIGKILL by PID after a bound), as
    does the test's own end (nspawn's parent-death signal). It shares the
    host's network: its ports are reached on 127.0.0.1.

Needs root, debootstrap, systemd-nspawn (systemd-container) and nsenter
(util-linux): scripts/install-deps.sh test installs them.
"""
import ctypes
import fcntl
import glob
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

CACHE_DIR = "/var/cache/scgi-balancer-tests"
SUITE = "bookworm"
DEBOOTSTRAP_OPTIONS = ["--variant=minbase", "--include=systemd,systemd-sysv,dbus"]
DEBOOTSTRAP_TIMEOUT_S = 420  # within the test's CTest TIMEOUT (600)
BOOT_TIMEOUT_S = 60
POWEROFF_TIMEOUT_S = 30
# What a command inside sees: not the environment of whoever runs the test.
INSIDE_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
              "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive", "SYSTEMD_PAGER=",
              "SYSTEMD_COLORS=0", "TERM=dumb"]


# Root's PATH, whatever the test's caller had: debootstrap lives in /usr/sbin.
HOST_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def missing_tools():
    """The commands this needs that are not installed, with their package."""
    wanted = {"debootstrap": "debootstrap", "systemd-nspawn": "systemd-container",
              "nsenter": "util-linux"}
    return [f"{tool} (package {package})" for tool, package in wanted.items()
            if shutil.which(tool, path=HOST_PATH) is None]


def apt_mirror():
    """The Debian mirror this machine's apt fetches SUITE's main from (the
    one-line and deb822 formats), or None for debootstrap's own default."""
    stanzas = []
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*")):
        try:
            with open(path) as sources:
                text = sources.read()
        except OSError:
            continue
        if path.endswith(".sources"):
            for block in text.split("\n\n"):
                fields = {}
                for line in block.splitlines():
                    if ":" in line and not line.startswith(("#", " ")):
                        key, value = line.split(":", 1)
                        fields[key.strip().lower()] = value.split()
                if "deb" in fields.get("types", []):
                    for uri in fields.get("uris", []):
                        stanzas.append((uri, fields.get("suites", []),
                                        fields.get("components", [])))
        elif path.endswith(".list"):
            for line in text.splitlines():
                words = line.split("#", 1)[0].split()
                if len(words) >= 4 and words[0] == "deb":
                    if words[1].startswith("["):  # options: [arch=amd64 signed-by=...]
                        while words and not words[0].endswith("]"):
                            words.pop(0)
                        words = ["deb"] + words[1:]
                    if len(words) >= 4:
                        stanzas.append((words[1], [words[2]], words[3:]))
    for uri, suites, components in stanzas:
        if SUITE in suites and "main" in components:
            return uri
    return None


def _unmount_below(path):
    """Unmounts whatever an interrupted debootstrap left mounted in `path`
    (its second stage mounts /proc and /sys there), so that removing the
    folder cannot reach into them."""
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    for point in sorted((p for p in points if p.startswith(real + "/")), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True, env={"PATH": HOST_PATH})


def _remove_tree(path):
    _unmount_below(path)
    shutil.rmtree(path, ignore_errors=True)


def debian_root(log=print):
    """The cached root file system; built first when missing. Returns its path."""
    key = hashlib.sha256(" ".join(DEBOOTSTRAP_OPTIONS + [SUITE]).encode()).hexdigest()[:12]
    root = os.path.join(CACHE_DIR, f"debian-{SUITE}-minbase-systemd-{key}")
    if os.path.isdir(root):
        return root
    os.makedirs(CACHE_DIR, mode=0o755, exist_ok=True)
    with open(os.path.join(CACHE_DIR, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isdir(root):  # another run built it while we waited
            return root
        # Under the lock no build is running: anything half-built is stale.
        for stale in glob.glob(os.path.join(CACHE_DIR, ".building-*")):
            _remove_tree(stale)
        building = tempfile.mkdtemp(prefix=".building-", dir=CACHE_DIR)
        target = os.path.join(building, "root")
        mirror = apt_mirror()
        command = (["debootstrap"] + DEBOOTSTRAP_OPTIONS + [SUITE, target]
                   + ([mirror] if mirror else []))
        log(f"building the cached root file system: {' '.join(command)}")
        started = time.monotonic()
        # Its own process group: on timeout, the dpkg and chroot it runs go too.
        made = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env={"PATH": HOST_PATH}, start_new_session=True)
        try:
            output, _ = made.communicate(timeout=DEBOOTSTRAP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(made.pid, signal.SIGKILL)
            made.communicate()
            _remove_tree(building)
            raise RuntimeError(f"debootstrap took more than {DEBOOTSTRAP_TIMEOUT_S} s")
        if made.returncode != 0:
            _remove_tree(building)
            raise RuntimeError(f"debootstrap failed (exit {made.returncode}): {output[-3000:]}")
        os.rename(target, root)  # whole or not at all
        _remove_tree(building)
        log(f"built {root} in {time.monotonic() - started:.0f} s")
    return root


PR_SET_PDEATHSIG = 1


def _powered_off_with_parent():
    """In nspawn before exec: SIGTERM (a clean poweroff) when the test dies."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class BootedDebian:
    """`root` booted under systemd-nspawn, changes kept in memory; use it in a `with`."""

    def __init__(self, root, name, nspawn_options=(), log=print):
        self.cached_root = root
        self.name = name
        self.nspawn_options = list(nspawn_options)
        self.log = log
        self.work = None  # ours: the console log and the notification socket
        self.nspawn = None  # the systemd-nspawn process we started
        self.init_pid = None  # the container's systemd, as the host numbers it
        self.console_path = None

    def __enter__(self):
        try:
            self._boot()
        except BaseException:
            self.poweroff()
            raise
        return self

    def __exit__(self, *exc):
        self.poweroff()
        return False

    def _boot(self):
        self.work = tempfile.mkdtemp(prefix=f"{self.name}.")
        started = time.monotonic()
        os.makedirs("/run/systemd/nspawn", exist_ok=True)  # nspawn's own, absent without systemd
        # nspawn tells its supervisor on $NOTIFY_SOCKET its container's PID 1
        # (X_NSPAWN_LEADER_PID), and with --notify-ready=yes READY=1 once that
        # systemd has finished booting: the events awaited below.
        notify_path = os.path.join(self.work, "notify")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        notify.bind(notify_path)
        self.console_path = os.path.join(self.work, "console.log")
        environment = {"PATH": HOST_PATH, "NOTIFY_SOCKET": notify_path}
        command = ["systemd-nspawn", "--directory", self.cached_root, "--volatile=overlay",
                   "--boot", "--register=no", "--keep-unit", "--notify-ready=yes",
                   "--machine", self.name, "--console=read-only"] + self.nspawn_options
        try:
            with open(self.console_path, "w") as console:
                self.nspawn = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=console,
                                               stderr=subprocess.STDOUT, env=environment,
                                               start_new_session=True,
                                               preexec_fn=_powered_off_with_parent)
            ready = False
            deadline = time.monotonic() + BOOT_TIMEOUT_S
            while not ready:
                left = deadline - time.monotonic()
                exited = self.nspawn.poll()
                if left <= 0 or exited is not None:
                    state = "running" if exited is None else f"exited {exited}"
                    raise RuntimeError(
                        f"the container did not finish booting within {BOOT_TIMEOUT_S} s "
                        f"(nspawn {state}); its console:\n{self.console()}")
                notify.settimeout(min(left, 1.0))  # 1 s: notice an nspawn that died
                try:
                    message = notify.recv(4096).decode(errors="replace")
                except socket.timeout:
                    continue
                for line in message.splitlines():
                    if line.startswith("X_NSPAWN_LEADER_PID="):
                        self.init_pid = int(line.split("=", 1)[1])
                    elif line == "READY=1":
                        ready = True
        finally:
            notify.close()
            os.unlink(notify_path)
        if self.init_pid is None or _parent_of(self.init_pid) != self.nspawn.pid:
            raise RuntimeError(f"the container's systemd ({self.init_pid}) is not nspawn's child")
        self.log(f"booted Debian in a container in {time.monotonic() - started:.1f} s "
                 f"(nspawn {self.nspawn.pid}, its systemd {self.init_pid})")

    def console(self, last=40):
        try:
            with open(self.console_path, errors="replace") as console:
                return "".join(console.readlines()[-last:])
        except (OSError, TypeError):
            return ""

    def run(self, command, timeout=60, input=None):
        """Runs `command` (a list) inside, as root with a plain environment:
        a CompletedProcess with text output (returncode 124 on timeout)."""
        full = (["nsenter", "--target", str(self.init_pid), "--all", "env", "-i"] + INSIDE_ENV
                + list(command))
        binary = isinstance(input, bytes)
        try:
            result = subprocess.run(full, capture_output=True, input=input, timeout=timeout,
                                    text=not binary, env={"PATH": HOST_PATH})
        except subprocess.TimeoutExpired as expired:
            return subprocess.CompletedProcess(full, 124, "",
                                               f"timed out after {timeout} s: {expired}")
        if binary:
            result = subprocess.CompletedProcess(full, result.returncode,
                                                 result.stdout.decode(errors="replace"),
                                                 result.stderr.decode(errors="replace"))
        return result

    def write_file(self, path, content, mode="0644"):
        """Writes `content` (str or bytes) to `path` inside (the changes live
        in the container's own mount namespace: there is no host path)."""
        data = content.encode() if isinstance(content, str) else content
        return self.run(["sh", "-c", 'cat > "$1" && chmod "$2" "$1"', "sh", path, mode], input=data)

    def read_file(self, path):
        """The text of `path` inside, or None when it cannot be read."""
        result = self.run(["cat", path])
        return result.stdout if result.returncode == 0 else None

    def poweroff(self):
        """Powers the machine off cleanly (SIGTERM makes nspawn ask its systemd
        for a shutdown), SIGKILLs it by PID after a bound; the changes made
        inside go with it."""
        started = time.monotonic()
        if self.nspawn is not None and self.nspawn.poll() is None:
            self.nspawn.send_signal(signal.SIGTERM)
            try:
                self.nspawn.wait(timeout=POWEROFF_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.log(f"the container did not power off within {POWEROFF_TIMEOUT_S} s: "
                         "killing it")
                for pid in (self.init_pid, self.nspawn.pid):  # PID 1 takes its namespace with it
                    if pid is not None:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                self.nspawn.wait(timeout=POWEROFF_TIMEOUT_S)
        if self.nspawn is not None:
            self.log(f"container powered off in {time.monotonic() - started:.1f} s")
            self.nspawn = None
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = None


def _parent_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
