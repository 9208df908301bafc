# The Debian package and the container image.
#  - `cpack -G DEB` from this build folder, inspected with dpkg-deb: files,
#    conffiles, Depends against the libraries the built binaries link,
#    maintainer scripts, and the packaged configurations pass --check.
#  - deploy/docker/Dockerfile (docker cannot run here): multi-stage on
#    Debian 12, non-root user, the build group of scripts/install-deps.sh,
#    and a runtime package list that covers every library the binaries link.
find_program(DPKG_DEB dpkg-deb REQUIRED)
find_program(DPKG_SHLIBDEPS dpkg-shlibdeps REQUIRED)  # dpkg-dev, for CPACK_DEBIAN_PACKAGE_SHLIBDEPS
add_test(NAME "deploy: Debian package holds the binaries, units and conffiles with the right Depends"
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/package_test.py ${CMAKE_CPACK_COMMAND}
                 ${PROJECT_BINARY_DIR} $<TARGET_FILE:scgi-manager> $<TARGET_FILE:scgi-proxy>
                 $<TARGET_FILE:scgictl>)
add_test(NAME "deploy: Dockerfile builds on Debian 12 and runs as non-root with every library"
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/dockerfile_test.py
                 ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR} $<TARGET_FILE:scgi-manager> $<TARGET_FILE:scgi-proxy>
                 $<TARGET_FILE:scgictl>)
set_tests_properties(
  "deploy: Debian package holds the binaries, units and conffiles with the right Depends"
  "deploy: Dockerfile builds on Debian 12 and runs as non-root with every library"
  PROPERTIES LABELS files TIMEOUT 120 SKIP_RETURN_CODE 77)

# The package for real (package_lifecycle_test.py): installed with apt-get
# into a Debian 12 booted under its own systemd (systemd-nspawn), both units
# driven through enable, start, reload under load, a refused reload, package
# upgrades (in place under load, refused, and a restart for a version that
# cannot), restart, stop, remove and purge, with the sandbox and limits read
# at run time. Root only (skipped otherwise); debootstrap and systemd-nspawn come
# from `scripts/install-deps.sh test`, and their absence fails the test. The
# root file system is cached in /var/cache/scgi-balancer-tests: about 30 s
# then, plus 1-2 minutes the first time on a machine. Label `package`: the
# sanitizer presets skip it, as the `files` tests.
add_test(NAME "deploy: the Debian package lifecycle under systemd, from install through upgrade in place to purge"
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/package_lifecycle_test.py
                 ${CMAKE_CPACK_COMMAND} ${PROJECT_BINARY_DIR}
                 ${SCGI_MANAGER_MAX_EXPOSURE} ${SCGI_PROXY_MAX_EXPOSURE})
set_tests_properties("deploy: the Debian package lifecycle under systemd, from install through upgrade in place to purge"
                     PROPERTIES LABELS package TIMEOUT 600 SKIP_RETURN_CODE 77)
