# systemd: tests of deploy/ files (filled in by its change)
