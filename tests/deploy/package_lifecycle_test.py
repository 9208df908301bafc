#!/usr/bin/env python3
"""The Debian package, installed for real into a Debian 12 booted under its
own systemd (booted_debian.py), and both units driven through their whole
life as a user would:

  - `cpack -G DEB` from the build folder; `apt-get install ./scgi-balancer_*.deb`
    inside, its dependencies from Debian's registry; nothing enabled or
    started by the install;
  - the packaged configurations, pointed at ports picked free here (the
    machine shares this host's network); enable, start (Type=notify: it
    returns once the daemon said READY=1, and a request is answered right
    away; `systemctl show -p StatusText` is the daemon's STATUS), `scgictl
    status`, a request through the manager's pool and one through the proxy;
  - at run time: `systemd-analyze security` within the bounds that
    systemd.cmake holds the units to offline; the descriptor limits of
    /proc/PID/limits (the manager's soft limit raised to the unit's hard
    one, the workers' given back, the proxy's); the manager's capability
    bounding set; the workers and the proxy as user scgi with no capability;
  - `systemctl reload` of each with a changed file, applied with 0 failed
    requests under load; a bad file refused by `systemctl reload` (which
    fails) with the running configuration kept; the STATUS each daemon gives
    systemd says which; `systemctl restart` (the
    requests it fails are counted, not judged: a hitless restart is the
    upgrade's business); stop leaves no process in the unit's cgroup;
  - package upgrades: the same package repacked with a higher Version,
    installed over it with apt-get while both serve under load, is taken in
    place by both (the postinst's hitless upgrade): 0 failed requests, the
    same main and worker PIDs, the new files running; another, while the
    manager's file has an error and a stand-in for a proxy that predates
    upgrades runs: the manager refuses and serves on untouched (apt says
    why), the proxy is restarted instead;
  - journald holds the daemons' lines;
  - remove stops and disables both and keeps the /etc/scgi conffiles; purge
    removes them and the log folders, and keeps the user (deploy/debian).

Needs root (exit 77 = skipped otherwise); every other missing piece is a
failure that says what to install. Takes about a minute once the root file
system is cached, two the first time.

Usage: package_lifecycle_test.py CPACK BUILD_DIR MANAGER_MAX_EXPOSURE PROXY_MAX_EXPOSURE
       (exposures out of 100, as systemd-analyze --threshold takes them)
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from booted_debian import BootedDebian, debian_root, missing_tools
from check_list import check, failures
from scgi_client import free_ports, scgi_get, status_line

SKIP = 77
MANAGER = "scgi-manager.service"
PROXY = "scgi-proxy.service"
# The unit's CapabilityBoundingSet: CHOWN 0, DAC_OVERRIDE 1, DAC_READ_SEARCH 2,
# KILL 5, SETGID 6, SETUID 7.
MANAGER_BOUNDING_SET = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 5) | (1 << 6) | (1 << 7)
UNIT_HARD_FILE_LIMIT = 524288  # LimitNOFILE= of both units
UNIT_SOFT_FILE_LIMIT = 1024  # the manager's LimitNOFILE soft value, given back to workers
CAP_SYS_RESOURCE = 24
STARTED = time.monotonic()
# The package repacked under higher versions, installed over it: upgrades.
NEWER, NEWEST = "99.0.0", "99.0.1"


def log(message):
    print(f"[{time.monotonic() - STARTED:5.1f}s] {message}", flush=True)


class Load:
    """Clients sending requests back to back, one thread each, until stopped
    or LIMIT_S has passed: what was answered (Status: 200) and what failed,
    with the first failures' reasons."""
    LIMIT_S = 120
    TIMEOUT_S = 10

    def __init__(self, ports, clients_per_port=2):
        self.ports = ports
        self.answered = 0
        self.failed = 0
        self.reasons = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(port,), daemon=True)
                         for port in ports for _ in range(clients_per_port)]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def _client(self, port):
        deadline = time.monotonic() + self.LIMIT_S
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                reason = status_line(scgi_get(port, self.TIMEOUT_S))
                ok = reason.startswith("Status: 200")
            except OSError as error:
                reason, ok = str(error), False
            with self._changed:
                if ok:
                    self.answered += 1
                else:
                    self.failed += 1
                    if len(self.reasons) < 5:
                        self.reasons.append(f"port {port}: {reason}")
                self._changed.notify_all()
            if not ok:
                self._stop.wait(0.05)  # a refused port: do not spin

    def wait_answered(self, count, timeout_s=20):
        """Until `count` requests in all were answered; False after the bound."""
        with self._changed:
            return self._changed.wait_for(lambda: self.answered >= count, timeout_s)

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(self.TIMEOUT_S + 5)
        return self

    def summary(self):
        return f"{self.answered} answered, {self.failed} failed {self.reasons}"


class Machine:
    """The booted Debian, and what the test asks of it."""

    def __init__(self, booted):
        self.booted = booted

    def run(self, *command, timeout=120, input=None):
        return self.booted.run(list(command), timeout=timeout, input=input)

    def ok(self, *command, label=None, timeout=120):
        """Runs the command and checks that it exits 0; its output."""
        result = self.run(*command, timeout=timeout)
        output = (result.stdout + result.stderr).strip()[-2000:] if result.returncode else ""
        check(result.returncode == 0, f"{label or ' '.join(command)} exits 0 (exit "
                                      f"{result.returncode}{': ' + output if output else ''})")
        return result.stdout

    def show(self, unit, prop):
        return self.run("systemctl", "show", "--value", "-p", prop, unit).stdout.strip()

    def main_pid(self, unit):
        pid = self.show(unit, "MainPID")
        return int(pid) if pid.isdigit() else 0

    def journal(self, unit):
        return self.run("journalctl", "--no-pager", "-o", "cat", "-u", unit).stdout

    def status_text(self, unit, wanted, timeout_s=10):
        """The unit's StatusText (the daemon's sd_notify STATUS) once it starts
        with `wanted`: systemd may read the notification after the command that
        caused it has returned. The last one seen after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            text = self.show(unit, "StatusText")
            if text.startswith(wanted) or time.monotonic() > deadline:
                return text
            time.sleep(0.1)

    def proc_status(self, pid):
        text = self.booted.read_file(f"/proc/{pid}/status") or ""
        return {line.split(":", 1)[0]: line.split(":", 1)[1].split() for line in text.splitlines()
                if ":" in line}

    def file_limits(self, pid):
        """(soft, hard) of RLIMIT_NOFILE in /proc/PID/limits inside."""
        for line in (self.booted.read_file(f"/proc/{pid}/limits") or "").splitlines():
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
        return None

    def exists(self, path):
        return self.run("test", "-e", path).returncode == 0

    def pools(self):
        """The manager's pools from `scgictl --json status`, or None."""
        result = self.run("scgictl", "--json", "status")
        try:
            return json.loads(result.stdout)["pools"]
        except (ValueError, KeyError):
            return None

    def ready_workers(self, pool):
        for status in self.pools() or []:
            if status["name"] == pool:
                return [w["pid"] for w in status["workers"] if w["state"] == "ready"]
        return []

    def wait_ready_workers(self, pool, count, timeout_s=30):
        """Waits (a bounded look every 0.2 s: the manager tells nothing more
        direct from outside) until the pool runs exactly `count` ready workers."""
        deadline = time.monotonic() + timeout_s
        while True:
            workers = self.ready_workers(pool)
            if len(workers) == count or time.monotonic() > deadline:
                return workers
            time.sleep(0.2)

    def cgroup_pids(self, cgroup):
        """The processes in the unit's cgroup, whichever hierarchy the
        container's systemd uses (unified, hybrid or legacy); [] once it is gone."""
        pids = set()
        for top in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd"):
            text = self.booted.read_file(f"{top}{cgroup}/cgroup.procs")
            if text:
                pids.update(int(pid) for pid in text.split())
        return sorted(pids)

    def hard_file_limit(self):
        """The hard descriptor limit systemd can give a service here: the
        unit's, unless systemd lacks CAP_SYS_RESOURCE (raising a hard limit
        needs it) and has a lower one itself, which it then gives instead (it
        sets the closest limit it can). A machine's own systemd has the
        capability, and so has nspawn's container when its host's root has it."""
        capabilities = int(self.proc_status(1).get("CapEff", ["0"])[0], 16)
        if capabilities & (1 << CAP_SYS_RESOURCE):
            return UNIT_HARD_FILE_LIMIT
        return min(UNIT_HARD_FILE_LIMIT, self.file_limits(1)[1])

    def exposure(self, unit):
        """The overall exposure of `systemd-analyze security UNIT` at run time."""
        result = self.run("systemd-analyze", "security", "--no-pager", unit)
        found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
        return float(found.group(1)) if found else None


def answers(port, label, timeout_s=10):
    try:
        reply = scgi_get(port, timeout_s)
    except OSError as error:
        return check(False, f"{label}: {error}")
    body = reply.split(b"\r\n\r\n", 1)[-1]
    return check(status_line(reply) == "Status: 200 OK" and body.startswith(b"hello from hello["),
                 f"{label} ({status_line(reply)}: {body[:80]!r})")


def answers_eventually(port, label, timeout_s=10):
    """For a listener that opens asynchronously (the proxy applies SIGHUP
    after `systemctl reload` returned): tries again while refused, bounded."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            reply = scgi_get(port, timeout_s)
            return check(status_line(reply) == "Status: 200 OK", f"{label} ({status_line(reply)})")
        except ConnectionRefusedError:
            time.sleep(0.1)
        except OSError as error:
            return check(False, f"{label}: {error}")
    return check(False, f"{label}: nothing listens after {timeout_s} s")


def refused(port):
    try:
        scgi_get(port, 2)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    return False


def build_package(cpack, build_dir, work):
    made = subprocess.run([cpack, "-G", "DEB", "--config",
                           os.path.join(build_dir, "CPackConfig.cmake"), "-B", work],
                          capture_output=True, text=True, timeout=600)
    debs = [name for name in os.listdir(work) if name.endswith(".deb")]
    if not check(made.returncode == 0 and len(debs) == 1,
                 f"cpack -G DEB makes one package ({debs}; exit {made.returncode})"):
        print(made.stdout + made.stderr)
        return None
    return os.path.join(work, debs[0])


def install(machine, deb):
    """apt-get install ./the.deb, as a user would; True when installed."""
    inside = f"/var/tmp/{os.path.basename(deb)}"
    with open(deb, "rb") as package:
        machine.booted.write_file(inside, package.read())
    # The cached root's package lists may be older than the registry.
    machine.ok("apt-get", "update", "-q", timeout=300)
    started = time.monotonic()
    installed = machine.run("apt-get", "install", "-y", "-q", inside, timeout=600)
    newly = re.search(r"(\d+) newly installed", installed.stdout)
    log(f"apt-get install: {time.monotonic() - started:.0f} s, "
        f"{newly.group(1) if newly else '?'} packages newly installed")
    if not check(installed.returncode == 0,
                 f"apt-get install {inside} exits 0 (exit {installed.returncode})"):
        print((installed.stdout + installed.stderr)[-4000:])
        return False
    check(machine.run("dpkg-query", "-W", "-f", "${Status}", "scgi-balancer").stdout
          == "install ok installed", "dpkg lists scgi-balancer as installed")
    check(machine.run("getent", "passwd", "scgi").returncode == 0,
          "the install created the user scgi")
    for unit in (MANAGER, PROXY):
        check(machine.show(unit, "UnitFileState") == "disabled"
              and machine.show(unit, "ActiveState") == "inactive",
              f"the install neither enables nor starts {unit}")
    return True


def configure(machine, ports):
    """The packaged files, moved to the ports picked here; the proxy in front
    of the manager's pool. Returns the manager's text."""
    manager = machine.booted.read_file("/etc/scgi/scgi.toml") or ""
    check("127.0.0.1:4000" in manager and "127.0.0.1:9100" in manager and "workers = 2" in manager,
          "the packaged scgi.toml runs two workers on 127.0.0.1:4000, metrics on :9100")
    manager = manager.replace("127.0.0.1:4000", f"127.0.0.1:{ports['pool']}").replace(
        "127.0.0.1:9100", f"127.0.0.1:{ports['manager_metrics']}")
    check(machine.booted.write_file("/etc/scgi/scgi.toml", manager).returncode == 0,
          "/etc/scgi/scgi.toml written")
    check(machine.booted.write_file("/etc/scgi/proxy.toml", proxy_config(ports)).returncode == 0,
          "/etc/scgi/proxy.toml written")
    return manager


def proxy_config(ports, second_pool=False, broken=False):
    text = f"""[proxy]
threads = 1
access_log = "-"
shutdown_timeout = "10s"
[metrics]
listen = "127.0.0.1:{ports['proxy_metrics']}"
[[pool]]
name = "app"
listen = "127.0.0.1:{ports['proxy']}"
backends = ["127.0.0.1:{ports['pool']}"]
concurrency = 2
"""
    if second_pool:
        text += f"""[[pool]]
name = "more"
listen = "127.0.0.1:{ports['proxy_second']}"
backends = ["127.0.0.1:{ports['pool']}"]
concurrency = {'"two"' if broken else 1}
"""
    return text


def start_and_serve(machine, ports):
    for unit in (MANAGER, PROXY):
        machine.ok("systemctl", "enable", unit)
        check(machine.show(unit, "UnitFileState") == "enabled"
              and machine.exists(f"/etc/systemd/system/multi-user.target.wants/{unit}"),
              f"{unit} is enabled (multi-user.target wants it)")
        machine.ok("systemctl", "start", unit)
        check(machine.show(unit, "ActiveState") == "active", f"{unit} is active")
        check(machine.show(unit, "Type") == "notify", f"{unit} is Type=notify")
        # `systemctl start` returned on the daemon's READY=1, which came with its STATUS.
        status = machine.show(unit, "StatusText")
        wanted = "serving 1 pool, 2 workers" if unit == MANAGER else "serving 1 pool"
        check(status == wanted, f"{unit}'s StatusText is the daemon's: {status!r} (want {wanted!r})")
        port = ports["pool"] if unit == MANAGER else ports["proxy"]
        answers(port, f"{unit} answers as soon as `systemctl start` returns")
    workers = machine.wait_ready_workers("hello", 2)
    check(len(workers) == 2, f"the manager runs the pool's 2 workers, ready ({workers})")
    status = machine.ok("scgictl", "status")
    check(re.search(r"^hello\b.*running", status, re.M) is not None,
          f"scgictl status shows the pool running:\n{status}")
    check(machine.exists("/run/scgi/scgi.sock"), "the control socket is /run/scgi/scgi.sock")
    answers(ports["pool"], "a request through the manager's pool is answered by a worker")
    answers(ports["proxy"], "a request through the proxy reaches the manager's pool")
    return workers


def check_run_time_hardening(machine, workers, manager_max, proxy_max, hard):
    for unit, bound in ((MANAGER, manager_max), (PROXY, proxy_max)):
        level = machine.exposure(unit)
        check(level is not None and level * 10 <= bound + 1e-9,
              f"systemd-analyze security {unit} at run time: {level} (at most {bound / 10})")

    manager_pid, proxy_pid = machine.main_pid(MANAGER), machine.main_pid(PROXY)
    limits = machine.file_limits(manager_pid)
    check(limits == (hard, hard),
          f"the manager raised its soft descriptor limit to the hard one {hard} "
          f"({limits}; LimitNOFILE={UNIT_SOFT_FILE_LIMIT}:{UNIT_HARD_FILE_LIMIT})")
    status = machine.proc_status(manager_pid)
    bounding = int(status.get("CapBnd", ["0"])[0], 16)
    check(bounding == MANAGER_BOUNDING_SET,
          f"the manager's capability bounding set is the unit's ({bounding:#x}, "
          f"want {MANAGER_BOUNDING_SET:#x})")
    check(status.get("NoNewPrivs") == ["1"] and status.get("Seccomp") == ["2"],
          f"the manager runs with no_new_privs and a system call filter "
          f"(NoNewPrivs {status.get('NoNewPrivs')}, Seccomp {status.get('Seccomp')})")

    uid = machine.run("id", "-u", "scgi").stdout.strip()
    gid = machine.run("id", "-g", "scgi").stdout.strip()
    for label, pid, soft in [(f"worker {w}", w, UNIT_SOFT_FILE_LIMIT) for w in workers] + \
                            [("the proxy", proxy_pid, hard)]:
        status = machine.proc_status(pid)
        check(status.get("Uid") == [uid] * 4 and status.get("Gid") == [gid] * 4,
              f"{label} runs as scgi ({uid}:{gid}): Uid {status.get('Uid')}, "
              f"Gid {status.get('Gid')}")
        caps = {name: status.get(name) for name in ("CapEff", "CapPrm", "CapAmb")}
        check(all(value == ["0000000000000000"] for value in caps.values()),
              f"{label} has no capability ({caps})")
        limits = machine.file_limits(pid)
        check(limits == (soft, hard), f"{label}'s descriptor limit is {soft}:{hard} ({limits})")


def check_reloads(machine, ports, manager_text):
    manager_pid, proxy_pid = machine.main_pid(MANAGER), machine.main_pid(PROXY)
    grown = manager_text.replace("workers = 2", "workers = 3")
    with Load([ports["pool"], ports["proxy"]]) as load:
        check(load.wait_answered(20), f"the load runs before the reloads ({load.summary()})")
        machine.booted.write_file("/etc/scgi/scgi.toml", grown)
        machine.ok("systemctl", "reload", MANAGER)
        machine.booted.write_file("/etc/scgi/proxy.toml", proxy_config(ports, second_pool=True))
        machine.ok("systemctl", "reload", PROXY)
        answers_eventually(ports["proxy_second"], "the proxy's new pool answers after its reload")
        for unit, wanted in ((MANAGER, "reload applied: serving 1 pool, 3 workers"),
                             (PROXY, "reload applied: serving 2 pools")):
            status = machine.status_text(unit, wanted)
            check(status == wanted, f"{unit}'s StatusText after its reload: {status!r}")
        workers = machine.wait_ready_workers("hello", 3)
        check(len(workers) == 3,
              f"the manager's reload applied the file: 3 workers ready ({workers})")
        check(load.wait_answered(load.answered + 100), "the load goes on after the reloads")
    check(load.failed == 0 and load.answered > 100,
          f"0 failed requests across both reloads ({load.summary()})")
    check(machine.main_pid(MANAGER) == manager_pid and machine.main_pid(PROXY) == proxy_pid,
          "a reload keeps both processes")

    # A bad file: `systemctl reload` fails, and what runs stays.
    broken = grown.replace("workers = 3", 'workers = "many"')
    machine.booted.write_file("/etc/scgi/scgi.toml", broken)
    bad = machine.run("systemctl", "reload", MANAGER)
    check(bad.returncode != 0,
          f"systemctl reload {MANAGER} fails on a bad file (exit {bad.returncode})")
    journal = machine.journal(MANAGER)
    check("has errors; the running configuration stays" in journal and "workers" in journal,
          "the manager's journal says what is wrong and that the running configuration stays")
    machine.booted.write_file("/etc/scgi/proxy.toml", proxy_config(ports, True, broken=True))
    bad = machine.run("systemctl", "reload", PROXY)
    check(bad.returncode != 0,
          f"systemctl reload {PROXY} fails on a bad file (exit {bad.returncode})")
    # Past the unit's check, a SIGHUP straight to the proxy: it keeps its configuration too.
    machine.ok("systemctl", "kill", "-s", "HUP", "--kill-who=main", PROXY)
    deadline = time.monotonic() + 10
    while "has errors; the running configuration stays" not in machine.journal(PROXY):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    check("has errors; the running configuration stays" in machine.journal(PROXY),
          "the proxy refuses a bad file on SIGHUP and says so in its journal")
    for unit in (MANAGER, PROXY):
        status = machine.status_text(unit, "reload rejected")
        check(status.startswith("reload rejected"),
              f"{unit}'s StatusText after the refused reload: {status!r}")
    for unit, pid in ((MANAGER, manager_pid), (PROXY, proxy_pid)):
        check(machine.show(unit, "ActiveState") == "active" and machine.main_pid(unit) == pid,
              f"{unit} still runs, the same process, after the refused reload")
    check(len(machine.ready_workers("hello")) == 3, "the manager keeps its 3 workers")
    answers(ports["pool"], "the manager's pool still answers")
    answers(ports["proxy"], "the proxy's pool still answers")
    answers(ports["proxy_second"], "the proxy's second pool still answers")
    machine.booted.write_file("/etc/scgi/scgi.toml", grown)
    machine.booted.write_file("/etc/scgi/proxy.toml", proxy_config(ports, second_pool=True))


def repack(deb, version, work):
    """The same package under another Version: (dpkg-deb -R, a new control
    file, dpkg-deb -b): apt takes it for an upgrade, and dpkg replaces every
    file (a new inode at /usr/bin/scgi-manager) and runs the new postinst."""
    tree = os.path.join(work, f"tree-{version}")
    subprocess.run(["dpkg-deb", "-R", deb, tree], check=True, timeout=120)
    control = os.path.join(tree, "DEBIAN", "control")
    with open(control) as file:
        text = file.read()
    with open(control, "w") as file:
        file.write(re.sub(r"^Version: .*$", f"Version: {version}", text, flags=re.M))
    repacked = os.path.join(work, f"scgi-balancer_{version}_amd64.deb")
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", tree, repacked], check=True,
                   capture_output=True, timeout=120)
    shutil.rmtree(tree)
    return repacked


def install_over(machine, deb, version):
    """apt-get install ./the.deb over the installed package: its output (the
    postinst's lines among it)."""
    inside = f"/var/tmp/{os.path.basename(deb)}"
    with open(deb, "rb") as package:
        machine.booted.write_file(inside, package.read())
    started = time.monotonic()
    installed = machine.run("apt-get", "install", "-y", "-q", inside, timeout=600)
    output = installed.stdout + installed.stderr
    log(f"apt-get install {os.path.basename(deb)}: {time.monotonic() - started:.1f} s")
    if not check(installed.returncode == 0,
                 f"apt-get install {inside} over the installed package exits 0 "
                 f"(exit {installed.returncode})"):
        print(output[-4000:])
    installed_version = machine.run("dpkg-query", "-W", "-f", "${Version}", "scgi-balancer").stdout
    check(installed_version == version, f"dpkg lists scgi-balancer {version} ({installed_version})")
    return "\n".join(line for line in output.splitlines() if line.startswith("scgi-balancer:"))


def program_of(machine, pid):
    """What /proc/PID/exe points at: the path, " (deleted)" once dpkg replaced it."""
    return machine.run("readlink", f"/proc/{pid}/exe").stdout.strip()


UPGRADED_LINE = re.compile(r"upgrade: \S+ took over from \S+ in place")


def check_package_upgrade(machine, ports, deb, version):
    """apt-get install of a newer package under load: both running daemons
    take the new program in place (the postinst's hitless upgrade)."""
    pids = {unit: machine.main_pid(unit) for unit in (MANAGER, PROXY)}
    workers = sorted(machine.ready_workers("hello"))
    with Load([ports["pool"], ports["proxy"]]) as load:
        check(load.wait_answered(20), f"the load runs before the upgrade ({load.summary()})")
        said = install_over(machine, deb, version)
        check(load.wait_answered(load.answered + 100), "the load goes on after the upgrade")
    log(f"package upgrade under load: {load.summary()}; the postinst said:\n{said}")
    if not check(load.failed == 0 and load.answered > 100,
                 f"0 failed requests through the package upgrade ({load.summary()})"):
        for unit in (MANAGER, PROXY):
            print("\n".join(line for line in machine.journal(unit).splitlines()
                            if "upgrade" in line or "status=5" in line or "error" in line))
    for unit, program in ((MANAGER, "/usr/bin/scgi-manager"), (PROXY, "/usr/bin/scgi-proxy")):
        pid = machine.main_pid(unit)
        check(machine.show(unit, "ActiveState") == "active" and pid == pids[unit],
              f"{unit} upgraded in place: the same MainPID ({pids[unit]} -> {pid})")
        exe = program_of(machine, pid)
        check(exe == program, f"{unit}'s process runs the installed {program} ({exe!r})")
        check(UPGRADED_LINE.search(machine.journal(unit)) is not None,
              f"{unit}'s journal has the upgrade line (\"upgrade: A took over from B in place\")")
    check(f"{MANAGER}: upgraded in place from" in said,
          f"the postinst reports the manager's upgrade in place:\n{said}")
    check(re.search(rf"^scgi-balancer: {PROXY}: upgraded in place \(pid \d+\): ", said, re.M) is not None,
          "the postinst reports the proxy's upgrade in place")
    check("restart" not in said, "the postinst restarted nothing")
    after = sorted(machine.ready_workers("hello"))
    check(after == workers, f"the same worker processes ({workers} -> {after})")
    for unit, wanted in ((MANAGER, "serving 1 pool, 3 workers"), (PROXY, "serving 2 pools")):
        status = machine.status_text(unit, wanted)
        check(status == wanted, f"{unit}'s StatusText after the upgrade: {status!r}")


# A main process that predates upgrades, for the postinst's fallback: it
# answers systemd (Type=notify) and rejects --upgrade-check, as the versions
# before the upgrade did ("not expected"); python3 is there (Recommends).
OLD_PROXY = """import os, signal, socket
address = os.environ["NOTIFY_SOCKET"]
notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify.sendto(b"READY=1\\nSTATUS=an scgi-proxy that predates upgrades",
              "\\0" + address[1:] if address.startswith("@") else address)
while True:
    signal.pause()
"""
OLD_PROXY_DROP_IN = "/run/systemd/system/scgi-proxy.service.d/predates-upgrades.conf"


def check_refused_and_fallback(machine, ports, deb, version, manager_text):
    """An upgrade the new program refuses (the manager's file has errors) leaves
    the running one serving, nothing restarted; a running program that cannot
    upgrade (a stand-in for an older proxy) is restarted instead."""
    machine.booted.write_file("/usr/local/lib/old-scgi-proxy.py", OLD_PROXY)
    machine.run("mkdir", "-p", os.path.dirname(OLD_PROXY_DROP_IN))
    machine.booted.write_file(OLD_PROXY_DROP_IN, "[Service]\nExecStartPre=\nExecStart=\n"
                              "ExecStart=/usr/bin/python3 /usr/local/lib/old-scgi-proxy.py\n")
    machine.ok("systemctl", "daemon-reload")
    machine.ok("systemctl", "restart", PROXY)
    old_proxy = machine.main_pid(PROXY)
    check(program_of(machine, old_proxy).startswith("/usr/bin/python3"),
          f"the stand-in for an older proxy runs ({program_of(machine, old_proxy)!r})")
    machine.run("rm", OLD_PROXY_DROP_IN)  # the unit is the package's again, for the restart
    machine.ok("systemctl", "daemon-reload")

    manager_pid = machine.main_pid(MANAGER)
    workers = sorted(machine.ready_workers("hello"))
    machine.booted.write_file("/etc/scgi/scgi.toml",
                              manager_text.replace("workers = 3", 'workers = "many"'))
    with Load([ports["pool"]]) as load:
        check(load.wait_answered(20), f"the load runs before the upgrade ({load.summary()})")
        said = install_over(machine, deb, version)
        check(load.wait_answered(load.answered + 50), "the load goes on after the upgrade")
    log(f"refused upgrade and fallback: {load.summary()}; the postinst said:\n{said}")
    check(load.failed == 0, f"0 failed requests through the refused upgrade ({load.summary()})")
    check(re.search(rf"{MANAGER} was NOT upgraded: .*workers", said, re.S) is not None
          and f"{MANAGER}: the previous version serves on" in said,
          f"the postinst says why the manager was not upgraded and that it serves on:\n{said}")
    check(machine.show(MANAGER, "ActiveState") == "active"
          and machine.main_pid(MANAGER) == manager_pid
          and program_of(machine, manager_pid).endswith("(deleted)")
          and sorted(machine.ready_workers("hello")) == workers,
          f"the refused upgrade left the manager as it was: the previous program, pid "
          f"{manager_pid}, workers {workers} ({program_of(machine, manager_pid)!r})")
    journal = machine.journal(MANAGER)
    check("upgrade refused: /etc/scgi/scgi.toml has errors" in journal
          and "this program serves on" in journal,
          "the manager's journal says the upgrade was refused and it serves on")

    check(f"{PROXY}: the running version (pid {old_proxy}) cannot upgrade in place; "
          f"restarting it" in said, f"the postinst restarts the proxy that predates upgrades")
    new_proxy = machine.main_pid(PROXY)
    check(new_proxy not in (0, old_proxy) and program_of(machine, new_proxy) == "/usr/bin/scgi-proxy",
          f"the restart started the installed scgi-proxy ({old_proxy} -> {new_proxy}, "
          f"{program_of(machine, new_proxy)!r})")
    answers(ports["proxy"], "the restarted proxy answers")

    # The cause fixed, the upgrade the postinst advised.
    machine.booted.write_file("/etc/scgi/scgi.toml", manager_text)
    upgraded = machine.ok("scgictl", "--config", "/etc/scgi/scgi.toml", "upgrade")
    check(machine.main_pid(MANAGER) == manager_pid
          and program_of(machine, manager_pid) == "/usr/bin/scgi-manager",
          f"then `scgictl upgrade` takes the installed program in place ({upgraded.strip()})")


def check_restart(machine, ports):
    for unit, port in ((MANAGER, ports["pool"]), (PROXY, ports["proxy"])):
        before = machine.main_pid(unit)
        with Load([port]) as load:
            load.wait_answered(20)
            started = time.monotonic()
            machine.ok("systemctl", "restart", unit)
            took = time.monotonic() - started
            if unit == MANAGER:
                machine.wait_ready_workers("hello", 3)
            load.wait_answered(load.answered + 50)
        after = machine.main_pid(unit)
        check(machine.show(unit, "ActiveState") == "active" and after not in (0, before),
              f"systemctl restart {unit}: a new process ({before} -> {after}) in {took:.1f} s")
        log(f"restart of {unit} under load: {load.summary()}")
        answers(port, f"after the restart of {unit}, its pool answers")


def check_stop(machine, ports):
    for unit, port in ((PROXY, ports["proxy"]), (MANAGER, ports["pool"])):
        cgroup = machine.show(unit, "ControlGroup")
        inside = machine.cgroup_pids(cgroup)
        check(len(inside) >= (4 if unit == MANAGER else 1),
              f"{unit}'s cgroup {cgroup} holds its processes ({inside})")
        started = time.monotonic()
        machine.ok("systemctl", "stop", unit)
        took = time.monotonic() - started
        left = machine.cgroup_pids(cgroup)
        alive = [pid for pid in inside if machine.exists(f"/proc/{pid}")]
        check(machine.show(unit, "ActiveState") == "inactive" and not left and not alive,
              f"systemctl stop {unit} ({took:.1f} s) leaves no process (cgroup {left}, "
              f"still alive {alive}) and the unit inactive ({machine.show(unit, 'Result')})")
        check(refused(port), f"{unit}'s port refuses connections once stopped")


def check_journal(machine, hard):
    manager = machine.journal(MANAGER)
    for line in (f"descriptor limit (RLIMIT_NOFILE): soft {hard} (started with 1024), hard {hard}",
                 "/etc/scgi/scgi.toml: OK, 1 pool",  # ExecStartPre's --check
                 "hello[0]: started pid", "reload: pool hello: workers 2 → 3",
                 "/etc/scgi/scgi.toml has errors; the running configuration stays",
                 "scgi-manager stopped"):
        check(line in manager, f"the manager's journal has \"{line}\"")
    proxy = machine.journal(PROXY)
    for line in (f"descriptor limit (RLIMIT_NOFILE): soft {hard} (started with {hard}), "
                 f"hard {hard}",
                 "reload: /etc/scgi/proxy.toml applied", "status=200", "method=GET uri=/",
                 "scgi-proxy stopped"):
        check(line in proxy, f"the proxy's journal has \"{line}\"")
    # systemd's own lines about the units: every notification came from the main process.
    for unit, journal in ((MANAGER, manager), (PROXY, proxy)):
        check("reception only permitted" not in journal,
              f"systemd took every notification of {unit} (none from another process)")


def check_remove_and_purge(machine, ports, units_dir):
    for unit in (MANAGER, PROXY):
        machine.ok("systemctl", "start", unit)
    machine.wait_ready_workers("hello", 3)
    machine.ok("apt-get", "remove", "-y", "-q", "scgi-balancer", timeout=300)
    check(machine.run("dpkg-query", "-W", "-f", "${Status}", "scgi-balancer").stdout
          == "deinstall ok config-files", "removed: dpkg keeps only its config files")
    for unit, port in ((MANAGER, ports["pool"]), (PROXY, ports["proxy"])):
        check(machine.show(unit, "ActiveState") == "inactive" and refused(port),
              f"remove stopped {unit}")
        check(not machine.exists(f"/etc/systemd/system/multi-user.target.wants/{unit}"),
              f"remove disabled {unit}")
        check(not machine.exists(f"{units_dir}/{unit}"), f"remove took {units_dir}/{unit}")
    for path in ("/usr/bin/scgi-manager", "/usr/bin/scgi-proxy", "/usr/bin/scgictl"):
        check(not machine.exists(path), f"remove took {path}")
    for path in ("/etc/scgi/scgi.toml", "/etc/scgi/proxy.toml"):
        text = machine.booted.read_file(path) or ""
        check(f"127.0.0.1:{ports['pool']}" in text, f"remove kept the conffile {path}, as edited")
    check(machine.exists("/var/log/scgi"), "remove kept the logs (/var/log/scgi)")

    machine.ok("apt-get", "purge", "-y", "-q", "scgi-balancer", timeout=300)
    check(machine.run("dpkg-query", "-W", "-f", "${Status}", "scgi-balancer").stdout
          in ("", "unknown ok not-installed"), "purged: dpkg knows nothing of the package")
    for path in ("/etc/scgi", "/var/log/scgi", "/var/log/scgi-proxy", "/run/scgi",
                 "/run/scgi-proxy"):
        check(not machine.exists(path), f"purge removed {path}")
    check(machine.run("getent", "passwd", "scgi").returncode == 0,
          "purge keeps the user scgi (postrm: its ids are never reused safely)")
    listed = machine.run("systemctl", "list-unit-files", "--no-legend", "scgi-*").stdout.strip()
    check(listed == "", f"systemd knows no scgi unit any more ({listed!r})")


def main():
    cpack, build_dir, manager_max, proxy_max = sys.argv[1:5]
    if os.geteuid() != 0:
        print("skipped: needs root (debootstrap, systemd-nspawn)")
        return SKIP
    missing = missing_tools()
    if missing:
        print(f"FAIL: missing {', '.join(missing)}: scripts/install-deps.sh test installs them")
        return 1
    work = tempfile.mkdtemp(prefix="scgi-lifecycle.")
    try:
        deb = build_package(cpack, build_dir, work)
        if deb is None:
            return 1
        log(f"package: {os.path.basename(deb)}")
        try:
            root = debian_root(log=log)
        except (OSError, RuntimeError) as error:
            print(f"FAIL: the Debian 12 root file system: {error}")
            return 1
        ports = dict(zip(["pool", "manager_metrics", "proxy", "proxy_second", "proxy_metrics"],
                         free_ports(5)))
        log(f"root file system {root}; ports {ports}")
        with BootedDebian(root, f"scgi-test-{os.getpid()}", log=log) as booted:
            machine = Machine(booted)
            try:
                if not install(machine, deb):
                    return 1
                log("installed")
                units_dir = "/lib/systemd/system"
                manager_text = configure(machine, ports)
                workers = start_and_serve(machine, ports)
                log("started")
                hard = machine.hard_file_limit()
                if hard != UNIT_HARD_FILE_LIMIT:
                    log(f"note: the container's systemd has no CAP_SYS_RESOURCE (this host's "
                        f"root lacks it) and a hard descriptor limit of {hard}: services get "
                        f"{hard} where LimitNOFILE says {UNIT_HARD_FILE_LIMIT}")
                check_run_time_hardening(machine, workers, int(manager_max), int(proxy_max), hard)
                check_reloads(machine, ports, manager_text)
                log("reloaded")
                grown = manager_text.replace("workers = 2", "workers = 3")
                check_package_upgrade(machine, ports, repack(deb, NEWER, work), NEWER)
                check_refused_and_fallback(machine, ports, repack(deb, NEWEST, work), NEWEST,
                                           grown)
                log("upgraded")
                check_restart(machine, ports)
                check_stop(machine, ports)
                check_journal(machine, hard)
                log("restarted and stopped")
                check_remove_and_purge(machine, ports, units_dir)
                log("removed and purged")
            finally:
                if failures:
                    for unit in (MANAGER, PROXY):
                        print(f"--- journal of {unit} (last lines)")
                        print("\n".join(machine.journal(unit).splitlines()[-30:]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"done: {len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
