// Reductions over the middle dim of a dense [outer, K, inner] block (see reduce.cuh).
#include "cuda/kernel_utils.cuh"
#include "cuda/reduce.cuh"

namespace mt::cuda {

namespace {

// Running state of one output: `a` is the sum (or the max), `b` the sum of squares (Var only).
struct Acc {
  double a, b;
};

constexpr int kColSlices = 8;  // slices of K a block in reduce_cols_kernel, threadIdx.y

__device__ __forceinline__ Acc acc_init(ReduceKind kind) {
  return {kind == ReduceKind::Max ? -INFINITY : 0.0, 0.0};
}

__device__ __forceinline__ void acc_add(ReduceKind kind, Acc& s, double v) {
  if (kind == ReduceKind::Max) {
    s.a = MaxOp{}(s.a, v);
  } else {
    s.a += v;
    if (kind == ReduceKind::Var) s.b += v * v;
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

// inner == 1: one block per (row, K chunk), the threads striding along the contiguous row. A
// few long rows (a global sum: one row of 64M) are split into gridDim.y chunks so that every SM
// gets blocks; the chunk states go to `partial` and are merged in order by reduce_merge_kernel.
template <typename T>
__global__ void reduce_rows_kernel(ReduceKind kind, T* out, Acc* partial, const T* x, int64_t K,
                                   int64_t k_chunk, double scale) {
  const T* row = x + blockIdx.x * K;
  const int64_t k_begin = blockIdx.y * k_chunk;
  const int64_t k_end = k_begin + k_chunk < K ? k_begin + k_chunk : K;
  Acc s = acc_init(kind);
  for (int64_t k = k_begin + threadIdx.x; k < k_end; k += blockDim.x) {
    acc_add(kind, s, double(load(row, k)));
  }
  if (kind == ReduceKind::Max) {
    s.a = block_reduce(s.a, MaxOp{}, double(-INFINITY));
  } else {
    s.a = block_sum(s.a);
    if (kind == ReduceKind::Var) s.b = block_sum(s.b);
  }
  if (threadIdx.x != 0) return;
  if (partial != nullptr) {
    partial[blockIdx.y * int64_t(gridDim.x) + blockIdx.x] = s;
  } else {
    store(out, blockIdx.x, acc_result(kind, s, K, scale));
  }
}

// inner > 1: a block is 32 adjacent outputs (threadIdx.x, coalesced loads) x 8 slices of K
// (threadIdx.y); the 8 partial states are merged in a fixed order through shared memory. When
// the outputs alone give too few blocks to fill the GPU (a bias gradient: [B*T, C] -> [C] is
// C / 32 blocks), K is also split over gridDim.z chunks whose states go to `partial` and are
// merged in a fixed order by reduce_merge_kernel.

template <typename T>
__global__ void reduce_cols_kernel(ReduceKind kind, T* out, Acc* partial, const T* x, int64_t K,
                                   int64_t inner, int64_t k_chunk, double scale) {
  __shared__ Acc slice[kColSlices][32];
  const int64_t i = blockIdx.x * int64_t(32) + threadIdx.x;
  const int64_t o = blockIdx.y;
  const int64_t k_begin = blockIdx.z * k_chunk;
  const int64_t k_end = k_begin + k_chunk < K ? k_begin + k_chunk : K;
  Acc s = acc_init(kind);
  if (i < inner) {
    for (int64_t k = k_begin + threadIdx.y; k < k_end; k += kColSlices) {
      acc_add(kind, s, double(load(x, (o * K + k) * inner + i)));
    }
  }
  slice[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && i < inner) {
    for (int j = 1; j < kColSlices; ++j) s = acc_merge(kind, s, slice[j][threadIdx.x]);
    if (partial != nullptr) {
      partial[(blockIdx.z * int64_t(gridDim.y) + o) * inner + i] = s;
    } else {
      store(out, o * inner + i, acc_result(kind, s, K, scale));
    }
  }
}

// Merges the chunk states of each of `outputs` outputs, 32 adjacent outputs a block: slice y
// merges chunks y, y + kMergeSlices, ... in order, then the slices are merged in order. The
// order is fixed, so the result has the same bits on every run. Each thread loads kMergeLoads
// states before it merges any: the loads are independent, only the adds form a chain, and a
// thousand chunks read one after another would wait on memory a thousand times.
constexpr int kMergeSlices = 32;
constexpr int kMergeLoads = 4;

template <typename T>
__global__ void reduce_merge_kernel(ReduceKind kind, T* out, const Acc* partial, int64_t chunks,
                                    int64_t outputs, int64_t K, double scale) {
  __shared__ Acc slice[kMergeSlices][32];
  const int64_t j = blockIdx.x * int64_t(32) + threadIdx.x;
  Acc s = acc_init(kind);
  if (j < outputs) {
    for (int64_t c0 = threadIdx.y; c0 < chunks; c0 += kMergeSlices * kMergeLoads) {
      Acc v[kMergeLoads];
#pragma unroll
      for (int u = 0; u < kMergeLoads; ++u) {
        const int64_t c = c0 + int64_t(u) * kMergeSlices;
        v[u] = c < chunks ? partial[c * outputs + j] : acc_init(kind);
      }
#pragma unroll
      for (int u = 0; u < kMergeLoads; ++u) s = acc_merge(kind, s, v[u]);
    }
  }
  slice[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && j < outputs) {
    for (int y = 1; y < kMergeSlices; ++y) s = acc_merge(kind, s, slice[y][threadIdx.x]);
    store(out, j, acc_result(kind, s, K, scale));
  }
}

// Launches reduce_merge_kernel over `outputs` outputs.
template <typename T>
void merge_chunks(ReduceKind kind, T* out, const Acc* partial, int64_t chunks, int64_t outputs,
                  int64_t K, double scale) {
  reduce_merge_kernel<T><<<unsigned((outputs + 31) / 32), dim3(32, kMergeSlices), 0, stream()>>>(
      kind, out, partial, chunks, outputs, K, scale);
  LAUNCH_CHECK();
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

void launch_reduce(ReduceKind kind, ElemType type, void* out, const void* x, int64_t outer,
                   int64_t K, int64_t inner, double scale) {
  if (outer * inner == 0) return;
  CHECK(outer <= 2147483647, "cuda reduce: outer size {} too large for the grid", outer);
  NvtxRange range("reduce");
  dispatch_float(type, "reduce", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* o = static_cast<T*>(out);
    const T* in = static_cast<const T*>(x);
    if (inner == 1) {
      // Chunks of at least 16K elements (64 per thread), up to ~2 blocks per SM in all.
      const int64_t chunks =
          std::max<int64_t>(1, std::min<int64_t>({(264 + outer - 1) / outer, K / 16384, 65535}));
      const int64_t k_chunk = (K + chunks - 1) / chunks;
      Acc* partial =
          chunks > 1 ? static_cast<Acc*>(allocate(sizeof(Acc) * chunks * outer)) : nullptr;
      const dim3 grid(static_cast<unsigned>(outer), static_cast<unsigned>(chunks));
      reduce_rows_kernel<T>
          <<<grid, kThreads, 0, stream()>>>(kind, o, partial, in, K, k_chunk, scale);
      LAUNCH_CHECK();
      if (partial != nullptr) {
        merge_chunks(kind, o, partial, chunks, outer, K, scale);
        release(partial);
      }
      return;
    }
    // gridDim.y is at most 65535: larger `outer` goes in slices of that many rows.
    for (int64_t o0 = 0; o0 < outer; o0 += 65535) {
      const int64_t rows = std::min<int64_t>(65535, outer - o0);
      const int64_t blocks = (inner + 31) / 32 * rows;
      // Split K until there are ~8 blocks per SM (1056 on an H100), keeping >= 64 rows of K
      // per chunk (8 a thread): a thread's rows are a chain of dependent float64 adds, so
      // short chains on many SMs finish sooner than long ones on a few.
      const int64_t chunks =
          std::max<int64_t>(1, std::min<int64_t>({(1056 + blocks - 1) / blocks, K / 64, 65535}));
      const int64_t k_chunk = (K + chunks - 1) / chunks;
      Acc* partial =
          chunks > 1 ? static_cast<Acc*>(allocate(sizeof(Acc) * chunks * rows * inner)) : nullptr;
      const dim3 grid(unsigned((inner + 31) / 32), unsigned(rows), unsigned(chunks));
      reduce_cols_kernel<T><<<grid, dim3(32, kColSlices), 0, stream()>>>(
          kind, o + o0 * inner, partial, in + o0 * K * inner, K, inner, k_chunk, scale);
      LAUNCH_CHECK();
      if (partial != nullptr) {
        merge_chunks(kind, o + o0 * inner, partial, chunks, rows * inner, K, scale);
        release(partial);  // stream-ordered: later users queue behind the merge
      }
    }
  });
}

void launch_argmax(ElemType type, int64_t* out, const void* x, int64_t outer, int64_t K,
                   int64_t inner) {
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
