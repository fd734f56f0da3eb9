// RetainFreedTensorMemory: a tensor-sized block comes from the heap and stays mapped
// after it is freed, instead of an mmap per allocation. Each test runs in its own
// process (gtest_discover_tests), so glibc starts from its defaults in each.
#include "model_store/host_allocator.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace headway {
namespace {

constexpr size_t kActivationBytes = size_t{20} << 20;  // ResNet-18's largest at batch 8

// Allocates and touches a block; true when glibc gave it its own mmap.
bool AllocationIsMapped(void** block) {
  const size_t mapped_before = mallinfo2().hblks;
  *block = std::malloc(kActivationBytes);
  std::memset(*block, 1, kActivationBytes);
  return mallinfo2().hblks > mapped_before;
}

// True when glibc's malloc serves this process: sanitizers bring their own, which
// neither mallinfo2 nor mallopt reaches. The probe stays below glibc's thresholds, so
// it changes neither.
bool GlibcAllocates() {
  constexpr size_t kProbeBytes = 64 << 10;
  const size_t before = mallinfo2().uordblks;
  void* volatile probe = std::malloc(kProbeBytes);  // volatile: kept, not elided
  const bool counted = mallinfo2().uordblks >= before + kProbeBytes;
  std::free(probe);
  return counted;
}

TEST(HostAllocatorTest, TensorSizedBlocksComeFromTheHeapAndStayMappedWhenFreed) {
  if (!GlibcAllocates()) GTEST_SKIP() << "glibc's malloc is not the allocator here";
  ASSERT_TRUE(RetainFreedTensorMemory(int64_t{256} << 20).ok());
  void* block = nullptr;
  EXPECT_FALSE(AllocationIsMapped(&block));
  std::free(block);
  // The freed block joined the heap's top and was not returned to the kernel.
  EXPECT_GE(mallinfo2().keepcost, kActivationBytes);
}

// A thread's malloc arena is a chain of 64 MiB heaps: the blocks of a pass that
// spans two of them stay mapped when freed, instead of glibc unmapping the second heap
// and the next pass faulting it in again.
TEST(HostAllocatorTest, AThreadsHeapsStayMappedWhenItsBlocksAreFreed) {
  if (!GlibcAllocates()) GTEST_SKIP() << "glibc's malloc is not the allocator here";
  ASSERT_TRUE(RetainFreedTensorMemory(int64_t{256} << 20).ok());
  size_t mapped_while_held = 0;
  size_t mapped_after_free = 0;
  // A new thread allocates from an arena of its own, not the main one.
  std::thread([&] {
    std::vector<void*> blocks;
    for (int i = 0; i < 4; ++i) {  // 80 MiB: more than one heap
      blocks.push_back(std::malloc(kActivationBytes));
      std::memset(blocks.back(), 1, kActivationBytes);
    }
    mapped_while_held = mallinfo2().arena;
    for (void* block : blocks) std::free(block);
    mapped_after_free = mallinfo2().arena;
  }).join();
  EXPECT_GE(mapped_while_held, 4 * kActivationBytes);
  EXPECT_EQ(mapped_after_free, mapped_while_held);
}

TEST(HostAllocatorTest, ZeroKeepsGlibcDefaults) {
  if (!GlibcAllocates()) GTEST_SKIP() << "glibc's malloc is not the allocator here";
  ASSERT_TRUE(RetainFreedTensorMemory(0).ok());
  void* block = nullptr;
  EXPECT_TRUE(AllocationIsMapped(&block));  // over glibc's initial 128 KiB threshold
  std::free(block);
}

TEST(HostAllocatorTest, NegativeIsInvalidArgument) {
  const absl::Status status = RetainFreedTensorMemory(-1);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("-1"), std::string::npos);
}

}  // namespace
}  // namespace headway
