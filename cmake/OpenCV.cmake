# Debian's per-module OpenCV packages (libopencv-{core,imgproc,imgcodecs}-dev) ship no
# CMake package, so this makes the imported target headway::opencv from their files.
find_path(OPENCV_INCLUDE_DIR opencv2/core.hpp PATH_SUFFIXES opencv4 REQUIRED)
set(_headway_opencv_libs)
foreach(module core imgproc imgcodecs)
  find_library(OPENCV_${module}_LIBRARY opencv_${module} REQUIRED)
  list(APPEND _headway_opencv_libs ${OPENCV_${module}_LIBRARY})
endforeach()
# cvconfig.h lives under the multiarch include folder.
find_path(OPENCV_ARCH_INCLUDE_DIR opencv2/cvconfig.h
  PATHS /usr/include/${CMAKE_LIBRARY_ARCHITECTURE} PATH_SUFFIXES opencv4)
add_library(headway::opencv INTERFACE IMPORTED)
set_target_properties(headway::opencv PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${OPENCV_INCLUDE_DIR};${OPENCV_ARCH_INCLUDE_DIR}"
  INTERFACE_LINK_LIBRARIES "${_headway_opencv_libs}")
