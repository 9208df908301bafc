#!/usr/bin/env python3
"""scgi-manager.service keeps only a few capabilities of root: are they enough?

Runs the built scgi-manager as root under `setpriv` with exactly the
capability bounding set and no_new_privs of deploy/systemd/scgi-manager.service
(what systemd would apply), with a pool that runs as `nobody` in a folder only
`nobody` may enter and a control_group, and checks that:
  - the workers run as nobody, in that folder, with no capability left, and
    answer requests (CAP_SETUID, CAP_SETGID, CAP_DAC_READ_SEARCH), also
    through the Unix sockets that workers of a `socket = "unix"` pool create
    as nobody (CAP_DAC_OVERRIDE: the manager connects to them);
  - the control socket belongs to control_group (CAP_CHOWN);
  - on SIGTERM the manager stops those workers and exits 0 (CAP_KILL).
Needs root (exit 77 = skipped otherwise). The mount sandbox of the unit needs
systemd as PID 1 and is checked by systemd-analyze instead.

Usage: systemd_manager_privileges_test.py UNIT MANAGER_BIN SAMPLE_WORKER_BIN
"""
import os
import pwd
import grp
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from check_list import check, failures
from scgi_client import free_port, scgi_get

SKIP = 77


def bounding_set(unit_path):
    caps = None
    no_new_privs = False
    with open(unit_path) as unit:
        for line in unit:
            line = line.strip()
            if line.startswith("CapabilityBoundingSet="):
                caps = line.split("=", 1)[1].split()
            elif line == "NoNewPrivileges=yes":
                no_new_privs = True
    if caps is None:
        raise SystemExit(f"FAIL: {unit_path} has no CapabilityBoundingSet=")
    return caps, no_new_privs


def children_of(pid):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def status_field(pid, name):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(name + ":"):
                return line.split()[1:]
    return []


def main():
    unit, manager_bin, worker_bin = sys.argv[1:4]
    if os.geteuid() != 0:
        print("skipped: needs root (the manager drops workers to another user only as root)")
        return SKIP
    caps, no_new_privs = bounding_set(unit)
    nobody = pwd.getpwnam("nobody")
    nogroup = grp.getgrnam("nogroup")
    top = tempfile.mkdtemp(prefix="scgi-privileges.")
    os.chmod(top, 0o755)  # nobody must reach the app folder inside
    app = os.path.join(top, "app")
    os.mkdir(app, 0o700)
    worker_copy = os.path.join(app, "scgi-sample-worker")
    shutil.copy(worker_bin, worker_copy)
    os.chown(app, nobody.pw_uid, nogroup.gr_gid)
    os.chown(worker_copy, nobody.pw_uid, nogroup.gr_gid)
    runtime = os.path.join(top, "run")
    os.mkdir(runtime, 0o755)
    control_socket = os.path.join(runtime, "scgi.sock")
    port = free_port()
    unix_pool_port = free_port(after=port)  # the first one is not held open
    config = os.path.join(top, "scgi.toml")
    with open(config, "w") as out:
        out.write(f"""[manager]
control_socket = "{control_socket}"
control_group = "nogroup"
shutdown_timeout = "5s"
[metrics]
listen = ""
[[pool]]
name = "app"
listen = "127.0.0.1:{port}"
command = ["{worker_copy}"]
workers = 2
cwd = "{app}"
user = "nobody"
group = "nogroup"
stop_timeout = "5s"
[[pool]]
name = "sockets"
listen = "127.0.0.1:{unix_pool_port}"
command = ["{worker_copy}", "--unix", "{{socket}}"]
socket = "unix"
workers = 2
cwd = "{app}"
user = "nobody"
ready_timeout = "3s"
stop_timeout = "5s"
""")

    # What systemd applies for CapabilityBoundingSet= and NoNewPrivileges=.
    setpriv = ["setpriv", "--bounding-set=-all," + ",".join(
        "+" + cap.lower().removeprefix("cap_") for cap in caps), "--inh-caps=-all"]
    if no_new_privs:
        setpriv.append("--no-new-privs")
    env = {"PATH": "/usr/bin:/bin", "RUNTIME_DIRECTORY": runtime}
    log_path = os.path.join(top, "manager.log")
    with open(log_path, "w") as log:
        manager = subprocess.Popen(setpriv + [manager_bin, "--config", config], env=env,
                                   stdout=log, stderr=subprocess.STDOUT, cwd=top)
    workers = []
    try:
        reply = b""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and manager.poll() is None:
            try:
                reply = scgi_get(port, 2)
                if reply:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        head = reply.split(b"\r\n", 1)[0]
        check(head.startswith(b"Status: 200"), f"a worker answered a request ({head!r})")
        reply = b""
        while time.monotonic() < deadline and manager.poll() is None and not reply:
            try:
                reply = scgi_get(unix_pool_port, 2)
            except OSError:
                time.sleep(0.1)
        head = reply.split(b"\r\n", 1)[0]
        check(head.startswith(b"Status: 200"),
              f"a worker of the Unix-socket pool answered a request ({head!r})")
        workers = children_of(manager.pid)
        check(len(workers) == 4, f"the manager runs 4 workers (found {workers})")
        for pid in workers:
            uids = status_field(pid, "Uid")
            check(uids and all(int(u) == nobody.pw_uid for u in uids),
                  f"worker {pid} runs as nobody (uids {uids})")
            cap_eff = status_field(pid, "CapEff")
            check(cap_eff == ["0000000000000000"], f"worker {pid} has no capability ({cap_eff})")
            check(os.readlink(f"/proc/{pid}/cwd") == app, f"worker {pid} runs in its 0700 cwd")
        try:
            owner_group = os.stat(control_socket).st_gid
        except OSError as error:
            owner_group = error
        check(owner_group == nogroup.gr_gid,
              f"the control socket belongs to control_group nogroup (gid {owner_group})")

        manager.send_signal(signal.SIGTERM)
        try:
            code = manager.wait(timeout=20)
        except subprocess.TimeoutExpired:
            code = None
        check(code == 0, f"on SIGTERM the manager exits 0 (exit {code})")
        still_running = [pid for pid in workers if os.path.exists(f"/proc/{pid}")]
        check(not still_running, f"its workers are gone ({still_running})")
        with open(log_path) as log:
            text = log.read()
        check("Operation not permitted" not in text, "no EPERM in the manager's log")
    finally:
        if manager.poll() is None:
            manager.kill()
            manager.wait()
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if failures:
        with open(log_path) as log:
            print("--- manager log ---\n" + log.read()[-4000:])
    shutil.rmtree(top, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
