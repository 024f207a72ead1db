// RMSNorm forward and backward over the last dim of dense x [N, C] (see rmsnorm.cuh).
//
// Forward and dx: one warp per row, kRowWarps rows a block. The model's rows are short (C = 64:
// two elements a lane), so a block per row would leave most of its threads idle and pay a
// block-wide barrier per row; a warp reduces with shuffles alone. The row's sum of squares (and
// the backward's dot product) accumulate in float64 like the CPU reference, the elementwise
// math runs in the compute type.
// dw[c] = sum_n dy[n,c] x[n,c] rstd[n] is a column reduction over N rows (65,536 rows for a
// batch of 32 x 2048 tokens): stage 1 gives each of up to kMaxDwChunks row chunks its own
// float64 partial per column (coalesced: 32 adjacent columns a block, kDwSlices rows at a
// time), stage 2 adds the partials in a fixed order: interleaved runs per column, then the runs
// in order. No atomics, so dw has the same bits on every run. Many short chunks keep
// every SM busy: a thread's rows are a chain of dependent float64 adds.
#include <type_traits>

#include "cuda/kernel_utils.cuh"
#include "cuda/rmsnorm.cuh"

namespace mt::cuda {

namespace {

constexpr int kRowWarps = 8;         // rows a block in the row kernels (256 threads)
constexpr int kDwSlices = 8;         // row slices per dw block (threadIdx.y)
constexpr int kMaxDwChunks = 1024;   // stage-1 row chunks: ~8 blocks per SM on an H100 (132)
constexpr int kDwRowsPerChunk = 64;  // at least this many rows a chunk (8 a thread)

// This thread's row (one warp a row), or -1 past the last row.
__device__ __forceinline__ int64_t warp_row(int64_t N) {
  const int64_t row = blockIdx.x * int64_t(kRowWarps) + threadIdx.x / 32;
  return row < N ? row : -1;
}

inline unsigned row_blocks(int64_t N) { return unsigned((N + kRowWarps - 1) / kRowWarps); }

template <typename T, typename W>
__global__ void rmsnorm_fwd_kernel(T* y, compute_t<T>* rstd, const T* x, const W* w, int64_t N,
                                   int64_t C, float eps) {
  using A = compute_t<T>;
  const int64_t row = warp_row(N);
  if (row < 0) return;  // whole warps leave together: the shuffles below see full warps
  const int lane = threadIdx.x % 32;
  const int64_t base = row * C;
  double sum_sq = 0;
  for (int64_t c = lane; c < C; c += 32) {
    const double v = load(x, base + c);
    sum_sq += v * v;
  }
  sum_sq = warp_sum(sum_sq);
  const A r = A(1.0 / ::sqrt(sum_sq / double(C) + double(eps)));
  if (lane == 0) rstd[row] = r;
  for (int64_t c = lane; c < C; c += 32) {
    store(y, base + c, load(x, base + c) * r * A(load(w, c)));
  }
}

// h = x + r, rounded to T as the elementwise add stores it, then rmsnorm_fwd_kernel's math on
// the rounded h. Each lane reads back only the h elements it wrote itself.
template <typename T, typename W>
__global__ void add_rmsnorm_fwd_kernel(T* y, T* h, compute_t<T>* rstd, const T* x, const T* r,
                                       const W* w, int64_t N, int64_t C, float eps) {
  using A = compute_t<T>;
  const int64_t row = warp_row(N);
  if (row < 0) return;
  const int lane = threadIdx.x % 32;
  const int64_t base = row * C;
  double sum_sq = 0;
  for (int64_t c = lane; c < C; c += 32) {
    store(h, base + c, load(x, base + c) + load(r, base + c));
    const double v = load(h, base + c);
    sum_sq += v * v;
  }
  sum_sq = warp_sum(sum_sq);
  const A rs = A(1.0 / ::sqrt(sum_sq / double(C) + double(eps)));
  if (lane == 0) rstd[row] = rs;
  for (int64_t c = lane; c < C; c += 32) {
    store(y, base + c, load(h, base + c) * rs * A(load(w, c)));
  }
}

// dx = rstd (dy w) - x rstd^3 / C * sum_k dy w x
template <typename T, typename W>
__global__ void rmsnorm_dx_kernel(T* dx, const T* dy, const T* x, const W* w,
                                  const compute_t<T>* rstd, int64_t N, int64_t C) {
  using A = compute_t<T>;
  const int64_t row = warp_row(N);
  if (row < 0) return;
  const int lane = threadIdx.x % 32;
  const int64_t base = row * C;
  double dot = 0;
  for (int64_t c = lane; c < C; c += 32) {
    dot += double(load(dy, base + c) * A(load(w, c))) * double(load(x, base + c));
  }
  dot = warp_sum(dot);
  const A r = rstd[row];
  const A coef = A(double(r) * r * r * dot / double(C));
  for (int64_t c = lane; c < C; c += 32) {
    store(dx, base + c, load(dy, base + c) * A(load(w, c)) * r - load(x, base + c) * coef);
  }
}

// Stage 1: partial[chunk, c] = sum over the chunk's rows of dy x rstd, in float64.
template <typename T>
__global__ void rmsnorm_dw_partial_kernel(double* partial, const T* dy, const T* x,
                                          const compute_t<T>* rstd, int64_t N, int64_t C,
                                          int64_t rows_per_chunk) {
  __shared__ double slice_sum[kDwSlices][32];
  const int64_t c = blockIdx.x * int64_t(32) + threadIdx.x;
  const int64_t begin = blockIdx.y * rows_per_chunk;
  const int64_t end = begin + rows_per_chunk < N ? begin + rows_per_chunk : N;
  double s = 0;
  if (c < C) {
    for (int64_t n = begin + threadIdx.y; n < end; n += kDwSlices) {
      s += double(load(dy, n * C + c)) * double(load(x, n * C + c)) * double(rstd[n]);
    }
  }
  slice_sum[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    for (int j = 1; j < kDwSlices; ++j) s += slice_sum[j][threadIdx.x];
    partial[blockIdx.y * C + c] = s;
  }
}

// Stage 2: dw[c] = sum over chunks: slice y adds chunks y, y + kDwMergeSlices, ... in order
// (kDwMergeLoads loads in flight per thread: only the adds form a chain), then the slices are
// added in order.
constexpr int kDwMergeSlices = 32;
constexpr int kDwMergeLoads = 4;

template <typename W>
__global__ void rmsnorm_dw_final_kernel(W* dw, const double* partial, int64_t chunks, int64_t C) {
  __shared__ double slice_sum[kDwMergeSlices][32];
  const int64_t c = blockIdx.x * int64_t(32) + threadIdx.x;
  double s = 0;
  if (c < C) {
    for (int64_t j0 = threadIdx.y; j0 < chunks; j0 += kDwMergeSlices * kDwMergeLoads) {
      double v[kDwMergeLoads];
#pragma unroll
      for (int u = 0; u < kDwMergeLoads; ++u) {
        const int64_t j = j0 + int64_t(u) * kDwMergeSlices;
        v[u] = j < chunks ? partial[j * C + c] : 0.0;
      }
#pragma unroll
      for (int u = 0; u < kDwMergeLoads; ++u) s += v[u];
    }
  }
  slice_sum[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    for (int j = 1; j < kDwMergeSlices; ++j) s += slice_sum[j][threadIdx.x];
    store(dw, c, s);
  }
}

// The (x, w) type pairs the framework uses: equal types, or bf16 activations with float32
// weights (bf16-mixed). Calls f(x_tag, w_tag).
template <typename F>
void dispatch_norm_types(ElemType x_type, ElemType w_type, F&& f) {
  if (x_type == ElemType::BF16 && w_type == ElemType::F32) {
    f(elem_tag<bf16>{}, elem_tag<float>{});
    return;
  }
  CHECK(x_type == w_type, "rmsnorm (cuda): x type {} with w type {} is not supported", int(x_type),
        int(w_type));
  dispatch_float(x_type, "rmsnorm", [&](auto tag) { f(tag, tag); });
}

void rmsnorm_dw(ElemType x_type, ElemType w_type, void* dw, const void* dy, const void* x,
                const void* rstd, int64_t N, int64_t C) {
  const int64_t chunks = std::min<int64_t>(
      kMaxDwChunks, std::max<int64_t>(1, (N + kDwRowsPerChunk - 1) / kDwRowsPerChunk));
  const int64_t rows_per_chunk = (N + chunks - 1) / chunks;
  double* partial = static_cast<double*>(allocate(sizeof(double) * chunks * C));
  dispatch_norm_types(x_type, w_type, [&](auto xt, auto wt) {
    using T = typename decltype(xt)::type;
    using W = typename decltype(wt)::type;
    const dim3 grid(unsigned((C + 31) / 32), unsigned(chunks));
    rmsnorm_dw_partial_kernel<T><<<grid, dim3(32, kDwSlices), 0, stream()>>>(
        partial, static_cast<const T*>(dy), static_cast<const T*>(x),
        static_cast<const compute_t<T>*>(rstd), N, C, rows_per_chunk);
    LAUNCH_CHECK();
    rmsnorm_dw_final_kernel<W><<<unsigned((C + 31) / 32), dim3(32, kDwMergeSlices), 0, stream()>>>(
        static_cast<W*>(dw), partial, chunks, C);
    LAUNCH_CHECK();
  });
  release(partial);  // stream-ordered: the next user of the block queues behind stage 2
}

}  // namespace

void launch_rmsnorm_forward(ElemType x_type, ElemType w_type, void* y, void* rstd, const void* x,
                            const void* w, int64_t N, int64_t C, float eps) {
  if (N == 0 || C == 0) return;
  NvtxRange range("rmsnorm_fwd");
  dispatch_norm_types(x_type, w_type, [&](auto xt, auto wt) {
    using T = typename decltype(xt)::type;
    using W = typename decltype(wt)::type;
    rmsnorm_fwd_kernel<T, W><<<row_blocks(N), kRowWarps * 32, 0, stream()>>>(
        static_cast<T*>(y), static_cast<compute_t<T>*>(rstd), static_cast<const T*>(x),
        static_cast<const W*>(w), N, C, eps);
    LAUNCH_CHECK();
  });
}

void launch_add_rmsnorm_forward(ElemType x_type, ElemType w_type, void* y, void* h, void* rstd,
                                const void* x, const void* r, const void* w, int64_t N, int64_t C,
                                float eps) {
  if (N == 0 || C == 0) return;
  NvtxRange range("add_rmsnorm_fwd");
  dispatch_norm_types(x_type, w_type, [&](auto xt, auto wt) {
    using T = typename decltype(xt)::type;
    using W = typename decltype(wt)::type;
    add_rmsnorm_fwd_kernel<T, W><<<row_blocks(N), kRowWarps * 32, 0, stream()>>>(
        static_cast<T*>(y), static_cast<T*>(h), static_cast<compute_t<T>*>(rstd),
        static_cast<const T*>(x), static_cast<const T*>(r), static_cast<const W*>(w), N, C, eps);
    LAUNCH_CHECK();
  });
}

void launch_rmsnorm_backward(ElemType x_type, ElemType w_type, void* dx, void* dw, const void* dy,
                             const void* x, const void* w, const void* rstd, int64_t N, int64_t C) {
  if (C == 0) return;
  NvtxRange range("rmsnorm_bwd");
  if (dx != nullptr && N > 0) {
    dispatch_norm_types(x_type, w_type, [&](auto xt, auto wt) {
      using T = typename decltype(xt)::type;
      using W = typename decltype(wt)::type;
      rmsnorm_dx_kernel<T, W><<<row_blocks(N), kRowWarps * 32, 0, stream()>>>(
          static_cast<T*>(dx), static_cast<const T*>(dy), static_cast<const T*>(x),
          static_cast<const W*>(w), static_cast<const compute_t<T>*>(rstd), N, C);
      LAUNCH_CHECK();
    });
  }
  if (dw != nullptr) rmsnorm_dw(x_type, w_type, dw, dy, x, rstd, N, C);
}

}  // namespace mt::cuda
