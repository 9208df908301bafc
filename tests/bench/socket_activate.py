#!/usr/bin/env python3
"""Hands a listening socket to a program the way systemd does, then becomes it.

    socket_activate.py --fd N -- PROGRAM [ARGS...]

Duplicates the inherited descriptor N onto fd 3, sets LISTEN_FDS=1 and
LISTEN_PID to this process's own pid, and execs PROGRAM: exec keeps the pid,
so LISTEN_PID names the program (sd_listen_fds checks that). The benchmark's
"direct" target starts four sample workers this way over one socket, so the
kernel hands each connection to whichever worker calls accept() first.
Standard library only.
"""
import os
import sys

LISTEN_FDS_START = 3  # systemd's SD_LISTEN_FDS_START


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[0] != "--fd" or argv[2] != "--":
        print("usage: socket_activate.py --fd N -- PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    fd = int(argv[1])
    program = argv[3:]
    if fd != LISTEN_FDS_START:
        os.dup2(fd, LISTEN_FDS_START)  # dup2's copy is inheritable
        os.close(fd)
    else:
        os.set_inheritable(fd, True)
    os.environ["LISTEN_FDS"] = "1"
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ.pop("LISTEN_FDNAMES", None)
    os.execv(program[0], program)
    return 127  # not reached: execv raises on failure


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
