// Paths every test shares: the source tree and the bundled model store in it.
#ifndef HEADWAY_TESTS_SUPPORT_SOURCE_TREE_H_
#define HEADWAY_TESTS_SUPPORT_SOURCE_TREE_H_

#include <filesystem>
#include <string>

namespace headway::testing {

// A path inside the source tree.
std::filesystem::path SourcePath(const std::string& relative);

// The bundled model store, models/.
std::filesystem::path ModelStore();

// A fresh copy of the bundled model store in a temporary folder, for tests that
// write into the store; the caller removes it.
std::filesystem::path CopyModelStore();

}  // namespace headway::testing

#endif  // HEADWAY_TESTS_SUPPORT_SOURCE_TREE_H_
