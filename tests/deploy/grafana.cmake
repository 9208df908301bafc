# grafana: deploy/grafana/scgi-dashboard.json is what build_dashboard.py
# writes, and every panel's query returns data from Debian's Prometheus
# scraping a real scgi-manager under load (a misspelled metric fails it).
find_program(PROMETHEUS_SERVER prometheus REQUIRED)  # Debian's prometheus (scripts/install-deps.sh test)
set(grafana_dir ${PROJECT_SOURCE_DIR}/deploy/grafana)
add_test(NAME "deploy: Grafana dashboard is the one build_dashboard.py writes"
         COMMAND ${Python3_EXECUTABLE} ${grafana_dir}/build_dashboard.py --check)
add_test(NAME "deploy: every Grafana dashboard query returns data from a real Prometheus"
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/dashboard_test.py
                 $<TARGET_FILE:scgi-manager> $<TARGET_FILE:scgi-sample-worker> $<TARGET_FILE:scgi-load>
                 --prometheus ${PROMETHEUS_SERVER} --dashboard ${grafana_dir}/scgi-dashboard.json)
set_tests_properties("deploy: Grafana dashboard is the one build_dashboard.py writes"
                     PROPERTIES LABELS files TIMEOUT 30)
set_tests_properties("deploy: every Grafana dashboard query returns data from a real Prometheus"
                     PROPERTIES LABELS files TIMEOUT 120)
