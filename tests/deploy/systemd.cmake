# deploy/systemd: the units pass `systemd-analyze verify` (no warning either)
# and keep their sandbox (`systemd-analyze security --offline` exposure, out
# of 100: the manager 2.7 and the proxy 1.1 with Debian 12's systemd 252;
# loosen a unit and this fails).
# The same ceilings hold at run time, under a booted systemd (package.cmake).
set(SCGI_MANAGER_MAX_EXPOSURE 28)
set(SCGI_PROXY_MAX_EXPOSURE 12)
find_program(SYSTEMD_ANALYZE systemd-analyze REQUIRED)  # Debian's systemd (scripts/install-deps.sh test)
add_test(NAME "deploy: systemd units verify and keep their sandbox"
         COMMAND ${CMAKE_CURRENT_LIST_DIR}/check_systemd_units.sh ${PROJECT_SOURCE_DIR}/deploy/systemd
                 $<TARGET_FILE:scgi-manager> $<TARGET_FILE:scgi-proxy> $<TARGET_FILE:scgictl>
                 ${SCGI_MANAGER_MAX_EXPOSURE} ${SCGI_PROXY_MAX_EXPOSURE})
set_tests_properties("deploy: systemd units verify and keep their sandbox" PROPERTIES LABELS files)
# The capabilities the manager's unit keeps are enough to run workers as
# another user: the real manager under setpriv with that bounding set (root
# only; skipped otherwise).
add_test(NAME "deploy: systemd manager unit keeps the privileges to run workers as their user"
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/systemd_manager_privileges_test.py
                 ${PROJECT_SOURCE_DIR}/deploy/systemd/scgi-manager.service
                 $<TARGET_FILE:scgi-manager> $<TARGET_FILE:scgi-sample-worker>)
set_tests_properties("deploy: systemd manager unit keeps the privileges to run workers as their user"
                     PROPERTIES LABELS files SKIP_RETURN_CODE 77 TIMEOUT 60)
