// ScopedCerrCapture: keeps what the calling thread writes to std::cerr while it lives,
// so that a library's raw diagnostics become part of an error message instead of
// lines on the server's stderr. OpenCV 4.6's cv::imdecode prints the reason it gives
// up on a BMP or WebP ("can't read header: ... Assertion failed ...") to std::cerr and
// returns an empty image; Headway quotes that reason in its INVALID_ARGUMENT instead.
//
// The first capture replaces std::cerr's buffer, once, with one that sends each
// thread's text either to that thread's capture or, with no capture active, to the
// original buffer, unchanged. Other threads' output is therefore never lost or
// reordered within a write. Captured text is kept up to kMaxCapturedBytes.
//
// InstallCerrRouting() does the replacement at once; a program that may write to
// std::cerr from several threads calls it before it starts them (the server's main
// does), so no thread reads std::cerr's buffer while it is replaced.
//
// Thread-safe: each capture belongs to the thread that made it; one thread may hold
// one capture at a time (a nested one is refused by a check).
#ifndef HEADWAY_MODEL_STORE_CERR_CAPTURE_H_
#define HEADWAY_MODEL_STORE_CERR_CAPTURE_H_

#include <cstddef>
#include <string>

namespace headway {

// Replaces std::cerr's buffer with the routing one; later calls do nothing.
void InstallCerrRouting();

class ScopedCerrCapture {
 public:
  static constexpr size_t kMaxCapturedBytes = 4096;

  ScopedCerrCapture();
  ~ScopedCerrCapture();
  ScopedCerrCapture(const ScopedCerrCapture&) = delete;
  ScopedCerrCapture& operator=(const ScopedCerrCapture&) = delete;

  // What this thread wrote to std::cerr since the capture began.
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

// OpenCV's imdecode diagnostic, as one line for an error message: the reason after
// OpenCV's version and source location, at most `max_length` characters; empty when
// `captured` holds none.
std::string OpenCvDecodeReason(const std::string& captured, size_t max_length = 200);

}  // namespace headway

#endif  // HEADWAY_MODEL_STORE_CERR_CAPTURE_H_
