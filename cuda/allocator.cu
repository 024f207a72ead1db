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

void* CachingAllocator::allocate(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  const size_t size = round_size(nbytes);
  std::lock_guard<std::mutex> lock(mutex_);
  void* ptr = nullptr;
  size_t block_size = size;
  // The smallest cached block that fits, if it is at most twice the request.
  auto it = free_blocks_.lower_bound(size);
  if (it != free_blocks_.end() && it->first <= 2 * size) {
    block_size = it->first;
    ptr = it->second;
    free_blocks_.erase(it);
  } else {
    ptr = device_malloc(size);
  }
  if (g_poison) CUDA_CHECK(cudaMemsetAsync(ptr, 0xFF, block_size, stream()));
  live_.emplace(ptr, LiveBlock{block_size, nbytes});
  stats_.allocated += block_size;
  stats_.peak_allocated = std::max(stats_.peak_allocated, stats_.allocated);
  stats_.requested += nbytes;
  stats_.peak_requested = std::max(stats_.peak_requested, stats_.requested);
  return ptr;
}

void* CachingAllocator::device_malloc(size_t size) {
  void* ptr = nullptr;
  cudaError_t status = cudaMalloc(&ptr, size);
  if (status != cudaSuccess) {
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
  stats_.allocated -= it->second.size;
  stats_.requested -= it->second.requested;
  free_blocks_.emplace(it->second.size, ptr);
  live_.erase(it);
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
