#include "model_store/store/content_digest.h"

#include <openssl/evp.h>

#include <cstdint>
#include <memory>

#include "absl/strings/escaping.h"

namespace headway {

std::string ContentDigest(const std::vector<absl::string_view>& parts) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(),
                                                                  &EVP_MD_CTX_free);
  EVP_DigestInit_ex(context.get(), EVP_sha256(), nullptr);
  for (absl::string_view part : parts) {
    const uint64_t size = part.size();
    EVP_DigestUpdate(context.get(), &size, sizeof(size));
    EVP_DigestUpdate(context.get(), part.data(), part.size());
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(context.get(), digest, &length);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), length));
}

std::string HeadDigest(absl::string_view checkpoint,
                       const std::vector<std::string>& labels,
                       absl::string_view key_prefix) {
  std::vector<absl::string_view> parts = {checkpoint, key_prefix};
  parts.insert(parts.end(), labels.begin(), labels.end());
  return ContentDigest(parts);
}

}  // namespace headway
