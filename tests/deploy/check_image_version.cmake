# The container images carry Headway's version in their OCI labels: each Dockerfile's
# HEADWAY_VERSION default must be the version the top CMakeLists.txt sets.
#   cmake -DVERSION=x.y.z -DSOURCE_DIR=... -P check_image_version.cmake
foreach(dockerfile Dockerfile deploy/Dockerfile.cuda)
  file(STRINGS "${SOURCE_DIR}/${dockerfile}" lines REGEX "^ARG HEADWAY_VERSION=")
  if(NOT lines STREQUAL "ARG HEADWAY_VERSION=${VERSION}")
    message(FATAL_ERROR "${dockerfile}: '${lines}', but CMakeLists.txt says ${VERSION}")
  endif()
  message(STATUS "${dockerfile}: version ${VERSION}")
endforeach()
