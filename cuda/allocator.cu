// The caching device allocator: see allocator.cuh for the binning and reuse rules.
#include <algorithm>

#include "cuda/allocator.cuh"
#include "cuda/check.cuh"
#include "cuda/debug.h"

namespace mt::cuda {

namespace {
bool g_poison = false;  // set_poison_allocations (tests only)

size_t round_up(size_t n, size_t multiple) { return (n + multiple - 1) / multiple * multiple; }

std::string mib(size_t bytes) { return fmt::format("{:.2f} MiB", bytes / 1048576.0); }
}  // namespace

size_t CachingAllocator::round_size(size_t nbytes) {
  if (nbytes <= kSmallLimit) return round_up(std::max<size_t>(nbytes, 1), kSmallRound);
  return round_up(nbytes, kLargeRound);
}

void* CachingAllocator::take(FreeList& list, size_t size, size_t* block_size) {
  // The smallest cached block that fits, if it is at most twice the request.
  auto it = list.lower_bound(size);
  if (it == list.end() || it->first > 2 * size) return nullptr;
  *block_size = it->first;
  void* ptr = it->second;
  list.erase(it);
  return ptr;
}

void* CachingAllocator::allocate(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  const size_t size = round_size(nbytes);
  std::lock_guard<std::mutex> lock(mutex_);
  size_t block_size = size;
  void* ptr = nullptr;
  if (capturing_pool_ != 0) {
    // The best fit of the pool's free blocks and the general cache's, as outside a capture (the
    // pool's first would hand a request a block twice its size that a later, larger request
    // then misses, and the graph would hold more than the eager step uses). A block from the
    // general cache, or a new one, joins the pool.
    Pool& pool = pools_.at(capturing_pool_);
    const auto in_pool = pool.free.lower_bound(size);
    const auto in_cache = free_blocks_.lower_bound(size);
    const bool cache_fits = in_cache != free_blocks_.end() && in_cache->first <= 2 * size;
    const bool pool_fits = in_pool != pool.free.end() && in_pool->first <= 2 * size;
    if (pool_fits && (!cache_fits || in_pool->first <= in_cache->first)) {
      ptr = take(pool.free, size, &block_size);
    } else {
      ptr = cache_fits ? take(free_blocks_, size, &block_size) : device_malloc(size);
      pool.bytes += block_size;
    }
  } else {
    ptr = take(free_blocks_, size, &block_size);
    if (ptr == nullptr) ptr = device_malloc(size);
  }
  if (g_poison) CUDA_CHECK(cudaMemsetAsync(ptr, 0xFF, block_size, stream()));
  live_.emplace(ptr, LiveBlock{block_size, nbytes, capturing_pool_});
  stats_.allocated += block_size;
  stats_.peak_allocated = std::max(stats_.peak_allocated, stats_.allocated);
  stats_.requested += nbytes;
  stats_.peak_requested = std::max(stats_.peak_requested, stats_.requested);
  return ptr;
}

void* CachingAllocator::device_malloc(size_t size) {
  void* ptr = nullptr;
  cudaError_t status = cudaMalloc(&ptr, size);
  // (No flush-and-retry while a graph is captured: freeing synchronizes, which a capture forbids.)
  if (status != cudaSuccess && capturing_pool_ == 0) {
    (void)cudaGetLastError();  // clear the sticky-free error so later calls are not blamed
    free_cached_locked();
    status = cudaMalloc(&ptr, size);
  }
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    size_t free_bytes = 0, total_bytes = 0;
    (void)cudaMemGetInfo(&free_bytes, &total_bytes);
    FAIL(
        "CUDA out of memory: tried to allocate {} ({} bytes, rounded to {}); {} allocated, {} "
        "reserved by the caching allocator; the device has {} free of {} ({})",
        mib(size), size, mib(size), mib(stats_.allocated), mib(stats_.reserved), mib(free_bytes),
        mib(total_bytes), cudaGetErrorString(status));
  }
  stats_.reserved += size;
  stats_.num_device_mallocs += 1;
  return ptr;
}

void CachingAllocator::release(void* ptr) {
  if (ptr == nullptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = live_.find(ptr);
  CHECK(it != live_.end(), "cuda::release: {} was not allocated by the caching allocator", ptr);
  const size_t size = it->second.size;
  int pool = it->second.pool;
  stats_.requested -= it->second.requested;
  if (pool == 0 && capturing_pool_ != 0) {
    // Freed during a capture: the graph may have read it, so it is the graph's from now on.
    pool = capturing_pool_;
    pools_.at(pool).bytes += size;
  }
  live_.erase(it);
  if (pool == 0) {
    stats_.allocated -= size;
    free_blocks_.emplace(size, ptr);
    return;
  }
  // A pool's free block stays allocated once its capture is over: the replays use it.
  if (pool == capturing_pool_) stats_.allocated -= size;
  pools_.at(pool).free.emplace(size, ptr);
}

int CachingAllocator::begin_pool() {
  std::lock_guard<std::mutex> lock(mutex_);
  CHECK(capturing_pool_ == 0, "CachingAllocator::begin_pool: a capture (pool {}) is already on",
        capturing_pool_);
  capturing_pool_ = next_pool_++;
  pools_[capturing_pool_];
  return capturing_pool_;
}

void CachingAllocator::end_pool_capture() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (capturing_pool_ == 0) return;
  // From now on the pool's free blocks are held for the replays: allocated, as far as any
  // other user can tell.
  for (const auto& [size, ptr] : pools_.at(capturing_pool_).free) stats_.allocated += size;
  stats_.peak_allocated = std::max(stats_.peak_allocated, stats_.allocated);
  capturing_pool_ = 0;
}

void CachingAllocator::destroy_pool(int id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = pools_.find(id);
  if (it == pools_.end()) return;
  CHECK(id != capturing_pool_, "CachingAllocator::destroy_pool: pool {} is being captured", id);
  for (const auto& [size, ptr] : it->second.free) {
    stats_.allocated -= size;
    free_blocks_.emplace(size, ptr);
  }
  // Blocks still in use (a tensor made during the capture and kept) go to the general cache when
  // they are released.
  for (auto& [ptr, block] : live_) {
    if (block.pool == id) block.pool = 0;
  }
  pools_.erase(it);
}

size_t CachingAllocator::pool_bytes(int id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = pools_.find(id);
  return it == pools_.end() ? 0 : it->second.bytes;
}

void CachingAllocator::free_cached_locked() {
  if (free_blocks_.empty()) return;
  // cudaFree synchronizes the device, but be explicit: queued kernels may still use the blocks.
  CUDA_CHECK(cudaDeviceSynchronize());
  for (auto& [size, ptr] : free_blocks_) {
    CUDA_CHECK(cudaFree(ptr));
    stats_.reserved -= size;
  }
  free_blocks_.clear();
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  CHECK(capturing_pool_ == 0, "empty_cache: not allowed while a CUDA graph is being captured");
  free_cached_locked();
}

MemoryStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.peak_allocated = stats_.allocated;
  stats_.peak_requested = stats_.requested;
}

void set_poison_allocations(bool on) { g_poison = on; }

CachingAllocator& caching_allocator() {
  // Never destroyed: tensors freed during static destruction may still release into it, and by
  // then the CUDA context may be gone, so the driver reclaims the memory at exit instead.
  static CachingAllocator* instance = new CachingAllocator();
  return *instance;
}

}  // namespace mt::cuda
