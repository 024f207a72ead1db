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
//
// CUDA graphs (cuda/graph.h): a captured graph replays its kernels on the very addresses they
// had during the capture, so those blocks must stay the graph's. While a capture is on, every
// allocation comes from the capture's pool (its own free list first, then the general one, then
// cudaMalloc) and every release goes to it, blocks from before the capture included (a graph
// may read a block that was freed during its capture). Within the capture, blocks are reused as
// usual: the replay runs the work in the captured order on one stream. After the capture the
// pool keeps its free blocks for the replays and counts them as allocated (the GPU holds them
// for the graph); destroy_pool hands them back to the general cache.
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

  // Graph pools (see the top). begin_pool starts routing every allocation and release to a new
  // pool and returns its id (one capture at a time); end_pool_capture stops the routing; the
  // pool keeps its blocks until destroy_pool(id), which the caller issues once no replay can
  // still run (after a synchronize).
  int begin_pool();
  void end_pool_capture();
  void destroy_pool(int pool);
  size_t pool_bytes(int pool) const;  // every block the pool holds, in use or not

 private:
  using FreeList = std::multimap<size_t, void*>;  // rounded size -> cached block
  // Takes a block of at least `size` (at most twice) from `list`, or returns nullptr.
  static void* take(FreeList& list, size_t size, size_t* block_size);
  void* device_malloc(size_t nbytes);  // cudaMalloc with one cache-flushing retry
  void free_cached_locked();

  mutable std::mutex mutex_;
  FreeList free_blocks_;  // the general cache
  struct LiveBlock {
    size_t size;       // the block's (rounded, or a larger cached block's)
    size_t requested;  // what the tensor asked for
    int pool;          // 0: the general cache; else the graph pool it belongs to
  };
  std::unordered_map<void*, LiveBlock> live_;  // block in use -> its sizes
  struct Pool {
    FreeList free;
    size_t bytes = 0;  // every block of the pool, in use or free
  };
  std::map<int, Pool> pools_;
  int capturing_pool_ = 0;  // the pool a capture routes to; 0 when none
  int next_pool_ = 1;
  MemoryStats stats_;
};

// The process-wide allocator behind cuda::allocate / cuda::release.
CachingAllocator& caching_allocator();

}  // namespace mt::cuda
