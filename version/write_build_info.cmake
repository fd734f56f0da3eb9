# Writes OUT, the definitions of version.h's build facts, at build time: the version
# and build type passed in, and the git commit: COMMIT when it is given (a build from a
# source tree without .git, such as the container images'), else the commit of
# SOURCE_DIR read now. The file is only rewritten when its text changes, so an
# unchanged commit rebuilds nothing.
# cmake -DSOURCE_DIR=... -DOUT=... -DVERSION=... -DBUILD_TYPE=... [-DCOMMIT=...]
#       -P write_build_info.cmake
if(NOT "${COMMIT}" STREQUAL "" AND NOT "${COMMIT}" STREQUAL "unknown")
  string(SUBSTRING "${COMMIT}" 0 12 commit)
  set(commit_failed FALSE)
  set(commit_given TRUE)
else()
  set(commit_given FALSE)
  execute_process(
    COMMAND git -C "${SOURCE_DIR}" rev-parse --short=12 HEAD
    OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE commit_failed ERROR_QUIET)
endif()
if(commit_failed)
  set(commit "unknown")
elseif(NOT commit_given)
  execute_process(
    COMMAND git -C "${SOURCE_DIR}" status --porcelain --untracked-files=no
    OUTPUT_VARIABLE changes OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(NOT changes STREQUAL "")
    string(APPEND commit "-modified")
  endif()
endif()
set(text "// Written by version/write_build_info.cmake at build time.
#include \"version/version.h\"

namespace headway {

const char* HeadwayVersion() { return \"${VERSION}\"; }
const char* HeadwayCommit() { return \"${commit}\"; }
const char* HeadwayBuildType() { return \"${BUILD_TYPE}\"; }

}  // namespace headway
")
set(old "")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
