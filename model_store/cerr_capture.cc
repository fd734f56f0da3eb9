#include "model_store/cerr_capture.h"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <streambuf>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"

namespace headway {
namespace {

thread_local std::string* this_thread_capture = nullptr;

// An unbuffered streambuf: every write reaches xsputn or overflow, which send it to
// the writing thread's capture or to the original buffer.
class RoutingBuffer : public std::streambuf {
 public:
  explicit RoutingBuffer(std::streambuf* original) : original_(original) {}

 protected:
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    const char ch = traits_type::to_char_type(c);
    return xsputn(&ch, 1) == 1 ? c : traits_type::eof();
  }

  std::streamsize xsputn(const char* s, std::streamsize n) override {
    if (std::string* capture = this_thread_capture) {
      const size_t room = ScopedCerrCapture::kMaxCapturedBytes -
                          std::min(capture->size(), ScopedCerrCapture::kMaxCapturedBytes);
      capture->append(s, std::min(static_cast<size_t>(n), room));
      return n;
    }
    return original_->sputn(s, n);
  }

  int sync() override { return this_thread_capture ? 0 : original_->pubsync(); }

 private:
  std::streambuf* const original_;
};

}  // namespace

void InstallCerrRouting() {
  // Never freed: std::cerr may be written to until the process ends.
  [[maybe_unused]] static RoutingBuffer* const routing = [] {
    auto* buffer = new RoutingBuffer(std::cerr.rdbuf());
    std::cerr.rdbuf(buffer);
    return buffer;
  }();
}

ScopedCerrCapture::ScopedCerrCapture() {
  InstallCerrRouting();
  if (this_thread_capture != nullptr) {
    std::cerr << "ScopedCerrCapture: a thread may hold one capture at a time\n";
    std::abort();
  }
  this_thread_capture = &text_;
}

ScopedCerrCapture::~ScopedCerrCapture() { this_thread_capture = nullptr; }

std::string OpenCvDecodeReason(const std::string& captured, size_t max_length) {
  // "imdecode_(''): can't read header: OpenCV(4.6.0) path/grfmt_bmp.cpp:149: error:
  // (-215:Assertion failed) clrused >= 0 && clrused <= 2 in function 'readHeader'"
  std::string line = absl::StrReplaceAll(captured, {{"\n", " "}, {"\r", " "}});
  absl::string_view text = absl::StripAsciiWhitespace(line);
  if (text.empty()) return "";
  std::string what;
  if (const size_t after_call = text.find("): ");
      after_call != absl::string_view::npos && absl::StartsWith(text, "imdecode_")) {
    text.remove_prefix(after_call + 3);
  }
  // Keep OpenCV's stage ("can't read header") and its reason, without the version and
  // the source file.
  if (const size_t error = text.find(" error: ("); error != absl::string_view::npos) {
    absl::string_view stage = text.substr(0, text.find(": OpenCV("));
    absl::string_view reason = text.substr(error + 9);
    if (const size_t code_end = reason.find(") "); code_end != absl::string_view::npos) {
      // "(-215:Assertion failed) x" -> "Assertion failed: x"
      const absl::string_view kind = reason.substr(0, code_end);
      const size_t colon = kind.find(':');
      what = absl::StrCat(
          stage, ": ", colon == absl::string_view::npos ? kind : kind.substr(colon + 1),
          ": ", reason.substr(code_end + 2));
    } else {
      what = absl::StrCat(stage, ": ", reason);
    }
  } else {
    what = std::string(text);
  }
  if (what.size() > max_length) {
    what.resize(max_length);
    what += "...";
  }
  return what;
}

}  // namespace headway
