#include "model_store/cerr_capture.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <iostream>
#include <thread>

namespace headway {
namespace {

using ::testing::HasSubstr;

TEST(CerrCaptureTest, KeepsThisThreadsTextOffStderr) {
  ::testing::internal::CaptureStderr();
  std::string captured;
  {
    ScopedCerrCapture capture;
    std::cerr << "imdecode_(''): can't read header: " << 42 << std::endl;
    captured = capture.text();
  }
  std::cerr << "after the capture\n";
  const std::string on_stderr = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(captured, "imdecode_(''): can't read header: 42\n");
  EXPECT_EQ(on_stderr, "after the capture\n");
}

TEST(CerrCaptureTest, OtherThreadsWriteThrough) {
  ::testing::internal::CaptureStderr();
  std::string captured;
  {
    ScopedCerrCapture capture;
    std::thread([] { std::cerr << "from another thread\n"; }).join();
    std::cerr << "mine";
    captured = capture.text();
  }
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "from another thread\n");
  EXPECT_EQ(captured, "mine");
}

TEST(CerrCaptureTest, KeepsAtMostItsLimit) {
  ScopedCerrCapture capture;
  std::cerr << std::string(ScopedCerrCapture::kMaxCapturedBytes * 3, 'x');
  EXPECT_EQ(capture.text().size(), ScopedCerrCapture::kMaxCapturedBytes);
}

TEST(CerrCaptureTest, OpenCvReasonDropsVersionAndSourceLocation) {
  EXPECT_EQ(OpenCvDecodeReason("imdecode_(''): can't read header: OpenCV(4.6.0) "
                               "./modules/imgcodecs/src/grfmt_bmp.cpp:149: error: "
                               "(-215:Assertion failed) clrused >= 0 && clrused <= 2 in "
                               "function 'readHeader'\n"),
            "can't read header: Assertion failed: clrused >= 0 && clrused <= 2 in "
            "function 'readHeader'");
  EXPECT_EQ(OpenCvDecodeReason(""), "");
  EXPECT_EQ(OpenCvDecodeReason("something else\n"), "something else");
  EXPECT_THAT(OpenCvDecodeReason(std::string(1000, 'y'), 50), HasSubstr("..."));
  EXPECT_LE(OpenCvDecodeReason(std::string(1000, 'y'), 50).size(), 53u);
}

}  // namespace
}  // namespace headway
