#include "tests/support/source_tree.h"

#include <gtest/gtest.h>
#include <stdlib.h>

namespace headway::testing {

std::filesystem::path SourcePath(const std::string& relative) {
  return std::filesystem::path(HEADWAY_SOURCE_DIR) / relative;
}

std::filesystem::path ModelStore() { return SourcePath("models"); }

std::filesystem::path CopyModelStore() {
  char folder[] = "/tmp/headway-store-XXXXXX";
  EXPECT_NE(mkdtemp(folder), nullptr);
  std::filesystem::copy(ModelStore(), folder, std::filesystem::copy_options::recursive);
  return folder;
}

}  // namespace headway::testing
