// Content digests: SHA-256 (OpenSSL) as lowercase hex. Heads in the model store are
// named and compared by them, so every replica derives the same digest from the same
// bytes. Stateless; thread-safe.
#ifndef HEADWAY_MODEL_STORE_STORE_CONTENT_DIGEST_H_
#define HEADWAY_MODEL_STORE_STORE_CONTENT_DIGEST_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace headway {

// SHA-256 of `parts`, each preceded by its length, so that no two different lists of
// parts hash alike. 64 hex digits.
std::string ContentDigest(const std::vector<absl::string_view>& parts);

// A head's content digest: its checkpoint bytes, labels and key prefix.
std::string HeadDigest(absl::string_view checkpoint,
                       const std::vector<std::string>& labels,
                       absl::string_view key_prefix);

// The first 12 hex digits, for file names, logs and metric labels.
inline std::string ShortDigest(absl::string_view digest) {
  return std::string(digest.substr(0, 12));
}

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_STORE_CONTENT_DIGEST_H_
