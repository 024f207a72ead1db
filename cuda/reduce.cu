// Reductions over the middle dim of a dense [outer, K, inner] block (see reduce.cuh).
#include "cuda/kernel_utils.cuh"
#include "cuda/reduce.cuh"

namespace mt::cuda {

namespace {

// Running state of one output: `a` is the sum (or the max), `b` the sum of squares (Var only).
struct Acc {
  double a, b;
};

__device__ __forceinline__ Acc acc_init(ReduceKind kind) {
  return {kind == ReduceKind::Max ? -INFINITY : 0.0, 0.0};
}

__device__ __forceinline__ void acc_add(ReduceKind kind, Acc& s, double v) {
  if (kind == ReduceKind::Max) {
    s.a = MaxOp{}(s.a, v);
  } else {
    s.a += v;
    s.b += v * v;
  }
}

__device__ __forceinline__ Acc acc_merge(ReduceKind kind, Acc s, Acc t) {
  if (kind == ReduceKind::Max) return {MaxOp{}(s.a, t.a), 0.0};
  return {s.a + t.a, s.b + t.b};
}

__device__ __forceinline__ double acc_result(ReduceKind kind, Acc s, int64_t K, double scale) {
  switch (kind) {
    case ReduceKind::Sum:
      return s.a * scale;
    case ReduceKind::Max:
      return s.a;
    case ReduceKind::Var:
      return (s.b - s.a * s.a / double(K)) * scale;
  }
  return s.a;
}

// inner == 1: one block per row of K contiguous elements, the threads striding along the row.
template <typename T>
__global__ void reduce_rows_kernel(ReduceKind kind, T* out, const T* x, int64_t K, double scale) {
  const T* row = x + blockIdx.x * K;
  Acc s = acc_init(kind);
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) acc_add(kind, s, double(load(row, k)));
  if (kind == ReduceKind::Max) {
    s.a = block_reduce(s.a, MaxOp{}, double(-INFINITY));
  } else {
    s.a = block_sum(s.a);
    if (kind == ReduceKind::Var) s.b = block_sum(s.b);
  }
  if (threadIdx.x == 0) store(out, blockIdx.x, acc_result(kind, s, K, scale));
}

// inner > 1: a block is 32 adjacent outputs (threadIdx.x, coalesced loads) x 8 slices of K
// (threadIdx.y); the 8 partial states are merged in a fixed order through shared memory.
constexpr int kColSlices = 8;

template <typename T>
__global__ void reduce_cols_kernel(ReduceKind kind, T* out, const T* x, int64_t K, int64_t inner,
                                   double scale) {
  __shared__ Acc partial[kColSlices][32];
  const int64_t i = blockIdx.x * int64_t(32) + threadIdx.x;
  const int64_t o = blockIdx.y;
  Acc s = acc_init(kind);
  if (i < inner) {
    for (int64_t k = threadIdx.y; k < K; k += kColSlices) {
      acc_add(kind, s, double(load(x, (o * K + k) * inner + i)));
    }
  }
  partial[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && i < inner) {
    for (int j = 1; j < kColSlices; ++j) s = acc_merge(kind, s, partial[j][threadIdx.x]);
    store(out, o * inner + i, acc_result(kind, s, K, scale));
  }
}

template <typename T>
__global__ void argmax_kernel(int64_t* out, const T* x, int64_t outer, int64_t K, int64_t inner) {
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < outer * inner;
       j += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = j / inner, i = j % inner;
    int64_t best = 0;
    compute_t<T> best_value = load(x, o * K * inner + i);
    for (int64_t k = 1; k < K && !isnan(best_value); ++k) {
      const compute_t<T> v = load(x, (o * K + k) * inner + i);
      if (isnan(v) || v > best_value) {  // strict: the first of equal values wins
        best = k;
        best_value = v;
      }
    }
    out[j] = best;
  }
}

}  // namespace

void reduce(ReduceKind kind, ElemType type, void* out, const void* x, int64_t outer, int64_t K,
            int64_t inner, double scale) {
  if (outer * inner == 0) return;
  CHECK(outer <= 2147483647 && (inner == 1 || outer <= 65535),
        "cuda reduce: outer size {} too large for the grid", outer);
  NvtxRange range("reduce");
  dispatch_float(type, "reduce", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* o = static_cast<T*>(out);
    const T* in = static_cast<const T*>(x);
    if (inner == 1) {
      reduce_rows_kernel<T><<<unsigned(outer), kThreads, 0, stream()>>>(kind, o, in, K, scale);
    } else {
      const dim3 grid(unsigned((inner + 31) / 32), unsigned(outer));
      reduce_cols_kernel<T>
          <<<grid, dim3(32, kColSlices), 0, stream()>>>(kind, o, in, K, inner, scale);
    }
    LAUNCH_CHECK();
  });
}

void argmax(ElemType type, int64_t* out, const void* x, int64_t outer, int64_t K, int64_t inner) {
  if (outer * inner == 0) return;
  NvtxRange range("argmax");
  dispatch_float(type, "argmax", [&](auto tag) {
    using T = typename decltype(tag)::type;
    argmax_kernel<T><<<grid_for(outer * inner), kThreads, 0, stream()>>>(
        out, static_cast<const T*>(x), outer, K, inner);
    LAUNCH_CHECK();
  });
}

}  // namespace mt::cuda
