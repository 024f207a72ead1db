// The caching device allocator: cudaMalloc is slow (tens of microseconds, and it synchronizes
// the device), so freed blocks are kept in size-binned free lists and handed out again. After
// the first training step every request finds a cached block of its bin, and a steady-state step
// makes no cudaMalloc or cudaFree call at all (memory_stats().num_device_mallocs stops growing).
//
// Bins: a request is rounded up to a multiple of 512 B when it is at most 1 MiB (small tensors:
// norms' statistics, biases, scalars), else to a multiple of 2 MiB (activations, weights). A
// request reuses a cached block of the same rounded size, or a larger one at most twice its size
// (the waste stays bounded and a shape that grows a little still hits the cache).
//
// Stream semantics: the framework queues all work on one compute stream, so a block released
// while a kernel still reads it can be reused at once: the next user's work is queued behind
// that kernel on the same stream. empty_cache() synchronizes before it frees.
//
// Out of memory: on a cudaMalloc failure the cache is emptied and the call retried once; a second
// failure is an mt::Error naming the request and the current allocated/reserved bytes.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <unordered_map>

#include "cuda/runtime.h"

namespace mt::cuda {

class CachingAllocator {
 public:
  static constexpr size_t kSmallLimit = size_t(1) << 20;  // 1 MiB: largest "small" request
  static constexpr size_t kSmallRound = 512;              // small requests round to 512 B
  static constexpr size_t kLargeRound = size_t(2) << 20;  // large requests round to 2 MiB
  static_assert(kSmallLimit % kSmallRound == 0, "the small limit must be a whole bin");
  static_assert(kLargeRound % 256 == 0, "cudaMalloc alignment (256 B) must be preserved");

  // The size a request of `nbytes` is rounded up to.
  static size_t round_size(size_t nbytes);

  void* allocate(size_t nbytes);
  void release(void* ptr);
  void empty_cache();
  MemoryStats stats() const;
  void reset_peak();

 private:
  void* device_malloc(size_t nbytes);  // cudaMalloc with one cache-flushing retry
  void free_cached_locked();

  mutable std::mutex mutex_;
  std::multimap<size_t, void*> free_blocks_;  // rounded size -> cached block
  struct LiveBlock {
    size_t size;       // the block's (rounded, or a larger cached block's)
    size_t requested;  // what the tensor asked for
  };
  std::unordered_map<void*, LiveBlock> live_;  // block in use -> its sizes
  MemoryStats stats_;
};

// The process-wide allocator behind cuda::allocate / cuda::release.
CachingAllocator& caching_allocator();

}  // namespace mt::cuda
