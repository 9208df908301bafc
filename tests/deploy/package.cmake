# package: tests of deploy/ files (filled in by its change)
