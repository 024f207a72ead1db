// CUDA graph capture and replay over the compute stream (cuda/graph.h).
#include <atomic>

#include "cuda/allocator.cuh"
#include "cuda/check.cuh"
#include "cuda/graph.h"

namespace mt::cuda {

namespace {
std::atomic<bool> g_capturing{false};
}  // namespace

bool capturing() { return g_capturing.load(std::memory_order_relaxed); }

struct CapturedGraph::Impl {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  int pool = 0;  // the caching allocator's pool of this graph's memory; 0 before begin()
  bool recording = false;
};

CapturedGraph::CapturedGraph() : impl_(std::make_unique<Impl>()) {}

CapturedGraph::~CapturedGraph() {
  abort();
  if (impl_->exec == nullptr && impl_->pool == 0) return;
  // A replay may still be running on the stream: its memory goes back only after it ends.
  (void)cudaStreamSynchronize(stream());
  if (impl_->exec != nullptr) (void)cudaGraphExecDestroy(impl_->exec);
  if (impl_->graph != nullptr) (void)cudaGraphDestroy(impl_->graph);
  caching_allocator().destroy_pool(impl_->pool);
}

void CapturedGraph::begin() {
  CHECK(impl_->pool == 0, "CapturedGraph::begin: this graph was already captured");
  CHECK(!capturing(), "CapturedGraph::begin: another capture is on (one at a time)");
  cudaStream_t s = stream();
  CUDA_CHECK(cudaStreamSynchronize(s));
  impl_->pool = caching_allocator().begin_pool();
  // Relaxed: the caching allocator may call cudaMalloc while the capture is on (a new block for
  // the graph's pool), which the stricter modes refuse.
  const cudaError_t status = cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
  if (status != cudaSuccess) {
    caching_allocator().end_pool_capture();
    CUDA_CHECK(status);
  }
  impl_->recording = true;
  g_capturing = true;
}

void CapturedGraph::end() {
  CHECK(impl_->recording, "CapturedGraph::end: no capture is on");
  impl_->recording = false;
  g_capturing = false;
  cudaGraph_t graph = nullptr;
  const cudaError_t status = cudaStreamEndCapture(stream(), &graph);
  caching_allocator().end_pool_capture();
  if (status != cudaSuccess || graph == nullptr) {
    (void)cudaGetLastError();
    if (graph != nullptr) (void)cudaGraphDestroy(graph);
    FAIL(
        "CUDA graph capture failed: {} (the captured code may not synchronize with the GPU or "
        "read from it)",
        cudaGetErrorString(status));
  }
  impl_->graph = graph;
  CUDA_CHECK(cudaGraphInstantiate(&impl_->exec, graph, 0));
}

void CapturedGraph::abort() noexcept {
  if (!impl_->recording) return;
  impl_->recording = false;
  g_capturing = false;
  cudaGraph_t graph = nullptr;
  (void)cudaStreamEndCapture(stream(), &graph);
  if (graph != nullptr) (void)cudaGraphDestroy(graph);
  (void)cudaGetLastError();
  caching_allocator().end_pool_capture();
}

void CapturedGraph::replay() {
  CHECK(impl_->exec != nullptr, "CapturedGraph::replay: nothing captured (call begin and end)");
  CUDA_CHECK(cudaGraphLaunch(impl_->exec, stream()));
}

bool CapturedGraph::ready() const { return impl_->exec != nullptr; }

size_t CapturedGraph::memory_bytes() const { return caching_allocator().pool_bytes(impl_->pool); }

size_t CapturedGraph::nodes() const {
  if (impl_->graph == nullptr) return 0;
  size_t n = 0;
  CUDA_CHECK(cudaGraphGetNodes(impl_->graph, nullptr, &n));
  return n;
}

}  // namespace mt::cuda
