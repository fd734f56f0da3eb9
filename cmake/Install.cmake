# cmake --install: the binaries, and the client library with its headers and a CMake
# package, so that a project of yours builds against an installed Headway with
#   find_package(Headway REQUIRED)
#   target_link_libraries(app PRIVATE headway::client)
# (examples/client shows one). The package needs gRPC, protobuf and abseil, not
# LibTorch; a -DHEADWAY_CLIENT_ONLY=ON build installs it without the server.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(headway_binaries headway headway_loadgen)
if(TARGET headway_server)
  list(APPEND headway_binaries headway_server)
endif()
install(TARGETS ${headway_binaries} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

install(TARGETS headway_client headway_proto headway_config_proto EXPORT HeadwayTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES client/headway_client.h client/channel.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/client)
install(DIRECTORY ${HEADWAY_CONFIG_PROTO_DIR}/ ${HEADWAY_API_PROTO_DIR}/
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.pb.h")

set(headway_package_dir ${CMAKE_INSTALL_LIBDIR}/cmake/Headway)
install(EXPORT HeadwayTargets NAMESPACE headway:: DESTINATION ${headway_package_dir})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/HeadwayConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/HeadwayConfig.cmake
                              INSTALL_DESTINATION ${headway_package_dir})
# 0.x: a minor version may change the API.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/HeadwayConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/HeadwayConfig.cmake
              ${PROJECT_BINARY_DIR}/HeadwayConfigVersion.cmake
        DESTINATION ${headway_package_dir})
