// The CUDA runtime behind cuda/runtime.h: device selection, the one compute stream, copies, and
// memory through the caching allocator (cuda/allocator.cuh).
//
// Every CUDA call goes through CUDA_CHECK. The one exception is the probe in device_count(): a
// CUDA build running on a machine with no GPU or no driver (CI) must report 0 devices, not throw.
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "cuda/allocator.cuh"
#include "cuda/check.cuh"
#include "cuda/context.cuh"
#include "cuda/graph.h"
#include "cuda/runtime.h"

namespace mt::cuda {

namespace {

struct RuntimeState {
  std::mutex mutex;
  int device = 0;
  bool initialized = false;  // the stream (and with it the device) has been fixed
  cudaStream_t stream = nullptr;
  cublasLtHandle_t cublaslt = nullptr;
};

// Pinned staging for host-to-device copies. cudaMemcpyAsync from pageable memory first
// synchronizes the stream (the host waits for every queued kernel), which would stall a
// training step at each batch upload. A copy of up to 8 MiB instead goes through one of 4
// pinned buffers: memcpy into it, an asynchronous DMA, an event marking when the buffer is free
// again. The host waits only if the copy 4 uploads ago is still in flight.
constexpr size_t kStagingBytes = size_t(8) << 20;
constexpr int kStagingSlots = 4;

struct Staging {
  std::mutex mutex;
  void* host[kStagingSlots] = {};
  cudaEvent_t done[kStagingSlots] = {};
  int next = 0;
};

Staging& staging() {
  static Staging* s = new Staging();  // never destroyed: see caching_allocator()
  return *s;
}

RuntimeState& state() {
  static RuntimeState* s = new RuntimeState();  // never destroyed: see caching_allocator()
  return *s;
}

// Creates the compute stream on the chosen device on first use.
cudaStream_t ensure_stream() {
  RuntimeState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (!s.initialized) {
    CHECK(available(),
          "CUDA was requested but no GPU is available (cudaGetDeviceCount found none)");
    CUDA_CHECK(cudaSetDevice(s.device));
    // Non-blocking: the legacy default stream (used by stray libraries) never serializes with it.
    CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
    s.initialized = true;
  }
  return s.stream;
}

// Host copies and waits cannot be part of a CUDA graph: a replay would not redo them (the host
// data of a copy is read once, at the capture) and a wait would end the capture.
void refuse_while_capturing(const char* what) {
  CHECK(!capturing(),
        "{}: not allowed while a CUDA graph is being captured (a replay cannot redo host copies "
        "or waits); move it before or after the captured work",
        what);
}

}  // namespace

int device_count() {
  static int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();  // no driver or no GPU: a CPU-only machine, not an error
      return 0;
    }
    return n;
  }();
  return count;
}

bool available() { return device_count() > 0; }

void set_device(int index) {
  CHECK(index >= 0 && index < device_count(), "set_device({}): {} CUDA device(s) visible", index,
        device_count());
  RuntimeState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  // One stream and one allocator serve one device: pick it before the first CUDA tensor.
  CHECK(!s.initialized || s.device == index,
        "set_device({}): device {} is already in use; choose the device before the first CUDA "
        "tensor is created",
        index, s.device);
  s.device = index;
  CUDA_CHECK(cudaSetDevice(index));
}

int current_device() { return available() ? state().device : -1; }

std::string device_name(int index) {
  if (index < 0 || index >= device_count()) return "none";
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  return prop.name;
}

void* allocate(size_t nbytes) {
  ensure_stream();
  return caching_allocator().allocate(nbytes);
}

void release(void* ptr) { caching_allocator().release(ptr); }

void copy_host_to_device(void* dst, const void* src, size_t nbytes) {
  if (nbytes == 0) return;
  refuse_while_capturing("copy_host_to_device");
  cudaStream_t s = ensure_stream();
  if (nbytes > kStagingBytes) {
    // Large copies (a whole dataset upload) take the pageable path: it returns once `src` is
    // staged by the driver, after synchronizing the stream.
    CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, s));
    return;
  }
  Staging& st = staging();
  std::lock_guard<std::mutex> lock(st.mutex);
  const int slot = st.next;
  st.next = (st.next + 1) % kStagingSlots;
  if (st.host[slot] == nullptr) {
    CUDA_CHECK(cudaHostAlloc(&st.host[slot], kStagingBytes, cudaHostAllocDefault));
    CUDA_CHECK(cudaEventCreateWithFlags(&st.done[slot], cudaEventDisableTiming));
  } else {
    CUDA_CHECK(cudaEventSynchronize(st.done[slot]));  // its previous DMA has finished
  }
  std::memcpy(st.host[slot], src, nbytes);
  CUDA_CHECK(cudaMemcpyAsync(dst, st.host[slot], nbytes, cudaMemcpyHostToDevice, s));
  CUDA_CHECK(cudaEventRecord(st.done[slot], s));
}

void copy_device_to_host(void* dst, const void* src, size_t nbytes) {
  if (nbytes == 0) return;
  refuse_while_capturing("copy_device_to_host");
  cudaStream_t s = ensure_stream();
  CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, s));
  CUDA_CHECK(cudaStreamSynchronize(s));
}

void copy_device_to_device(void* dst, const void* src, size_t nbytes) {
  if (nbytes == 0) return;
  CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, ensure_stream()));
}

void memset_zero(void* dst, size_t nbytes) {
  if (nbytes == 0) return;
  CUDA_CHECK(cudaMemsetAsync(dst, 0, nbytes, ensure_stream()));
}

void synchronize() {
  if (!available() || !state().initialized) return;
  refuse_while_capturing("synchronize");
  CUDA_CHECK(cudaStreamSynchronize(state().stream));
}

void* stream_handle() { return ensure_stream(); }

MemoryStats memory_stats() { return caching_allocator().stats(); }
void reset_peak_memory() { caching_allocator().reset_peak(); }
void empty_cache() {
  if (available()) caching_allocator().empty_cache();
}

cublasLtHandle_t cublaslt_handle() {
  ensure_stream();
  RuntimeState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (s.cublaslt == nullptr) CUBLAS_CHECK(cublasLtCreate(&s.cublaslt));
  return s.cublaslt;
}

size_t cublas_workspace_bytes() {
  static const size_t bytes = [] {
    const char* v = std::getenv("MT_CUBLAS_WORKSPACE_MIB");
    if (v == nullptr || *v == '\0') return kDefaultCublasWorkspaceMiB << 20;
    char* end = nullptr;
    const long long mib = std::strtoll(v, &end, 10);
    CHECK(*end == '\0' && mib >= 0 && mib <= 4096,
          "MT_CUBLAS_WORKSPACE_MIB: expected a whole number of MiB in [0, 4096], got '{}'", v);
    return static_cast<size_t>(mib) << 20;
  }();
  return bytes;
}

void* cublas_workspace() {
  ensure_stream();
  // A static of its own, not RuntimeState's mutex: allocating may call back into
  // ensure_stream() (poisoned allocations queue a memset), which takes that mutex.
  static void* const workspace = cublas_workspace_bytes() > 0
                                     ? caching_allocator().allocate(cublas_workspace_bytes())
                                     : nullptr;
  return workspace;
}

}  // namespace mt::cuda
