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
