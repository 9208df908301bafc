# kubernetes: the manifests of deploy/kubernetes/ fit together (names, ports,
# labels, ConfigMap keys, the proxy's discover name), and the configurations
# they embed pass --check of the binaries built here...
set(kubernetes_test ${CMAKE_CURRENT_LIST_DIR}/kubernetes_test.py)
set(kubernetes_binaries --manager $<TARGET_FILE:scgi-manager> --proxy $<TARGET_FILE:scgi-proxy>)
add_test(NAME "deploy: Kubernetes manifests are consistent"
         COMMAND ${Python3_EXECUTABLE} ${kubernetes_test} ${PROJECT_SOURCE_DIR}/deploy/kubernetes
                 ${kubernetes_binaries})
set_tests_properties("deploy: Kubernetes manifests are consistent"
                     PROPERTIES LABELS files TIMEOUT 120)

# ...and run together: the workers' scgi-manager and scgi-proxy with those
# configurations, moved to loopback ports, the Service's DNS name answered by
# dnsmasq; requests go through the proxy to the sample app. This runs our
# discovery and daemons, so the sanitizer run keeps it.
find_program(KUBERNETES_TEST_DNSMASQ dnsmasq PATHS /usr/sbin /sbin REQUIRED)  # Debian's dnsmasq
add_test(NAME "deploy: Kubernetes configurations serve requests through DNS discovery"
         COMMAND ${Python3_EXECUTABLE} ${kubernetes_test} ${PROJECT_SOURCE_DIR}/deploy/kubernetes
                 ${kubernetes_binaries} --serve --dnsmasq ${KUBERNETES_TEST_DNSMASQ}
                 --examples ${PROJECT_SOURCE_DIR}/deploy/examples/workers)
set_tests_properties("deploy: Kubernetes configurations serve requests through DNS discovery"
                     PROPERTIES TIMEOUT 120)
