# Installation layout and the Debian package (`cpack -G DEB` in the build
# folder). Files that belong to the system (units, sysusers, /etc) go to the
# absolute paths Debian 12 uses, whatever CMAKE_INSTALL_PREFIX is; the rest
# goes under the prefix (/usr in the package).
include_guard(GLOBAL)

set(deploy_dir ${PROJECT_SOURCE_DIR}/deploy)

# Debian 12 paths: pkg-config --variable=systemdsystemunitdir systemd, and
# --variable=sysusersdir.
install(FILES ${deploy_dir}/systemd/scgi-manager.service ${deploy_dir}/systemd/scgi-proxy.service
        DESTINATION /lib/systemd/system)
install(FILES ${deploy_dir}/systemd/scgi.sysusers.conf
        DESTINATION /usr/lib/sysusers.d RENAME scgi.conf)
# The packaged configurations: the manager's runs its pool as user scgi and
# points at the installed sample; the proxy's is the documented example.
install(FILES ${deploy_dir}/systemd/scgi.toml DESTINATION /etc/scgi)
install(FILES ${deploy_dir}/examples/proxy.toml DESTINATION /etc/scgi)

# Examples, flat: the configurations (every key documented), the front-end
# configurations, and the sample workers beside them (hello.py, hello.pl), as
# the container image and the Kubernetes manifests expect them.
install(DIRECTORY ${deploy_dir}/examples/ DESTINATION share/scgi-balancer/examples
        USE_SOURCE_PERMISSIONS
        PATTERN sample-worker EXCLUDE
        PATTERN workers EXCLUDE
        PATTERN __pycache__ EXCLUDE)
install(DIRECTORY ${deploy_dir}/examples/workers/ DESTINATION share/scgi-balancer/examples
        USE_SOURCE_PERMISSIONS
        PATTERN __pycache__ EXCLUDE)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/docs/packaging.md
              ${PROJECT_SOURCE_DIR}/docs/operations.md ${PROJECT_SOURCE_DIR}/docs/control-protocol.md
        DESTINATION share/doc/scgi-balancer)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME scgi-balancer)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_CONTACT "scgi-balancer maintainers <maintainers@scgi-balancer.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "SCGI load-balancing proxy and process manager")
# The extended description; CPack puts the summary above it as the synopsis.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "scgi-manager runs pools of SCGI worker programs (Python, Perl, C, anything
that speaks SCGI), sends each request to the least busy worker, queues
requests when every worker is busy, restarts workers that die and exports
Prometheus metrics; scgictl controls it. scgi-proxy balances across SCGI
servers it does not run, found at fixed addresses or through DNS.
Includes hardened systemd units and an example configuration in /etc/scgi.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# Stripped like any Debian package (the build tree keeps the debug info).
set(CPACK_STRIP_FILES ON)  # scgi-balancer_0.1.0_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The library dependencies come from the binaries themselves (dpkg-shlibdeps,
# in dpkg-dev), so a library linked later is never forgotten here.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# The sample workers of the example configuration run on python3.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS python3)
# A front end to put in front of it; the Perl sample worker's library.
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "nginx | apache2 | lighttpd, libscgi-perl")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${deploy_dir}/debian/conffiles ${deploy_dir}/debian/postinst
    ${deploy_dir}/debian/prerm ${deploy_dir}/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# A package of exactly what `cmake --install` installs, nothing from the
# test or benchmark targets (they install nothing).
include(CPack)
