// LayerNorm forward and backward over the last dim of dense x [N, C] (see layernorm.cuh).
//
// Forward and dx: one block of 128 threads per row. The forward reads the row three times: its
// sum (the mean), the squared deviations from that mean (the variance, in two passes so that
// nothing cancels as in E[x^2] - E[x]^2), then y. The second and third reads hit L1/L2, not
// DRAM: a row of the model is 64..1024 elements. Sums accumulate in float64 like the CPU
// reference; the elementwise math runs in the compute type with the rounded mean and rstd,
// which are also what the backward reads.
// dw[c] = sum_n dy[n,c] xhat[n,c] and db[c] = sum_n dy[n,c] are column reductions over N rows,
// done as RMSNorm's dw (cuda/rmsnorm.cu): stage 1 gives each of up to 128 row chunks its own
// float64 partials per column (coalesced: 32 adjacent columns a block), stage 2 adds them in
// chunk order. No atomics, so dw and db have the same bits on every run.
#include <type_traits>

#include "cuda/kernel_utils.cuh"
#include "cuda/layernorm.cuh"

namespace mt::cuda {

namespace {

constexpr int kRowThreads = 128;   // C is 64..1024 in the model: most threads have work
constexpr int kDwSlices = 8;       // row slices per dw/db block (threadIdx.y)
constexpr int kMaxDwChunks = 128;  // stage-1 row chunks: ~1 block per SM on an H100 (132)

template <typename T>
using stat_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <typename T, typename W>
__global__ void layernorm_fwd_kernel(T* y, stat_t<T>* mean, stat_t<T>* rstd, const T* x, const W* w,
                                     const W* b, int64_t C, float eps) {
  using A = compute_t<T>;
  const int64_t base = blockIdx.x * C;
  double sum = 0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) sum += double(load(x, base + c));
  const double mu = block_sum(sum) / double(C);
  double sq = 0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const double d = double(load(x, base + c)) - mu;
    sq += d * d;
  }
  const double var = block_sum(sq) / double(C);
  const A m = A(mu), r = A(1.0 / ::sqrt(var + double(eps)));
  if (threadIdx.x == 0) {
    mean[blockIdx.x] = m;
    rstd[blockIdx.x] = r;
  }
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    store(y, base + c, (load(x, base + c) - m) * r * A(load(w, c)) + A(load(b, c)));
  }
}

// With g = dy w and xhat = (x - mean) rstd:
//   dx = rstd (g - sum_k g[k] / C - xhat sum_k g[k] xhat[k] / C)
template <typename T, typename W>
__global__ void layernorm_dx_kernel(T* dx, const T* dy, const T* x, const W* w,
                                    const stat_t<T>* mean, const stat_t<T>* rstd, int64_t C) {
  using A = compute_t<T>;
  const int64_t base = blockIdx.x * C;
  const A m = mean[blockIdx.x], r = rstd[blockIdx.x];
  double sum_g = 0, sum_gx = 0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const A g = load(dy, base + c) * A(load(w, c));
    const A xh = (load(x, base + c) - m) * r;
    sum_g += double(g);
    sum_gx += double(g) * double(xh);
  }
  const A mean_g = A(block_sum(sum_g) / double(C));
  const A mean_gx = A(block_sum(sum_gx) / double(C));
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const A g = load(dy, base + c) * A(load(w, c));
    const A xh = (load(x, base + c) - m) * r;
    store(dx, base + c, r * (g - mean_g - xh * mean_gx));
  }
}

// Stage 1: partial_w[chunk, c] = sum over the chunk's rows of dy xhat, partial_b[chunk, c] of
// dy, in float64.
template <typename T>
__global__ void layernorm_dw_db_partial_kernel(double* partial_w, double* partial_b, const T* dy,
                                               const T* x, const stat_t<T>* mean,
                                               const stat_t<T>* rstd, int64_t N, int64_t C,
                                               int64_t rows_per_chunk) {
  __shared__ double slice_w[kDwSlices][32];
  __shared__ double slice_b[kDwSlices][32];
  const int64_t c = blockIdx.x * int64_t(32) + threadIdx.x;
  const int64_t begin = blockIdx.y * rows_per_chunk;
  const int64_t end = begin + rows_per_chunk < N ? begin + rows_per_chunk : N;
  double sw = 0, sb = 0;
  if (c < C) {
    for (int64_t n = begin + threadIdx.y; n < end; n += kDwSlices) {
      const double g = double(load(dy, n * C + c));
      const double xh = (double(load(x, n * C + c)) - double(mean[n])) * double(rstd[n]);
      sw += g * xh;
      sb += g;
    }
  }
  slice_w[threadIdx.y][threadIdx.x] = sw;
  slice_b[threadIdx.y][threadIdx.x] = sb;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    for (int j = 1; j < kDwSlices; ++j) {
      sw += slice_w[j][threadIdx.x];
      sb += slice_b[j][threadIdx.x];
    }
    partial_w[blockIdx.y * C + c] = sw;
    partial_b[blockIdx.y * C + c] = sb;
  }
}

// Stage 2: dw[c] and db[c] = the sums over chunks, in chunk order (either may be null).
template <typename W>
__global__ void layernorm_dw_db_final_kernel(W* dw, W* db, const double* partial_w,
                                             const double* partial_b, int64_t chunks, int64_t C) {
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < C;
       c += int64_t(gridDim.x) * blockDim.x) {
    double sw = 0, sb = 0;
    for (int64_t j = 0; j < chunks; ++j) {
      sw += partial_w[j * C + c];
      sb += partial_b[j * C + c];
    }
    if (dw != nullptr) store(dw, c, sw);
    if (db != nullptr) store(db, c, sb);
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
  CHECK(x_type == w_type, "layernorm (cuda): x type {} with w type {} is not supported",
        int(x_type), int(w_type));
  dispatch_float(x_type, "layernorm", [&](auto tag) { f(tag, tag); });
}

void layernorm_dw_db(ElemType x_type, ElemType w_type, void* dw, void* db, const void* dy,
                     const void* x, const void* mean, const void* rstd, int64_t N, int64_t C) {
  const int64_t chunks = std::min<int64_t>(kMaxDwChunks, std::max<int64_t>(1, (N + 63) / 64));
  const int64_t rows_per_chunk = (N + chunks - 1) / chunks;
  double* partial = static_cast<double*>(allocate(sizeof(double) * 2 * chunks * C));
  double* partial_b = partial + chunks * C;
  dispatch_norm_types(x_type, w_type, [&](auto xt, auto wt) {
    using T = typename decltype(xt)::type;
    using W = typename decltype(wt)::type;
    const dim3 grid(unsigned((C + 31) / 32), unsigned(chunks));
    layernorm_dw_db_partial_kernel<T><<<grid, dim3(32, kDwSlices), 0, stream()>>>(
        partial, partial_b, static_cast<const T*>(dy), static_cast<const T*>(x),
        static_cast<const stat_t<T>*>(mean), static_cast<const stat_t<T>*>(rstd), N, C,
        rows_per_chunk);
    LAUNCH_CHECK();
    layernorm_dw_db_final_kernel<W><<<grid_for(C), kThreads, 0, stream()>>>(
        static_cast<W*>(dw), static_cast<W*>(db), partial, partial_b, chunks, C);
    LAUNCH_CHECK();
  });
  release(partial);  // stream-ordered: the next user of the block queues behind stage 2
}

}  // namespace

void launch_layernorm_forward(ElemType x_type, ElemType w_type, void* y, void* mean, void* rstd,
                              const void* x, const void* w, const void* b, int64_t N, int64_t C,
                              float eps) {
  if (N == 0 || C == 0) return;
  NvtxRange range("layernorm_fwd");
  dispatch_norm_types(x_type, w_type, [&](auto xt, auto wt) {
    using T = typename decltype(xt)::type;
    using W = typename decltype(wt)::type;
    layernorm_fwd_kernel<T, W><<<unsigned(N), kRowThreads, 0, stream()>>>(
        static_cast<T*>(y), static_cast<stat_t<T>*>(mean), static_cast<stat_t<T>*>(rstd),
        static_cast<const T*>(x), static_cast<const W*>(w), static_cast<const W*>(b), C, eps);
    LAUNCH_CHECK();
  });
}

void launch_layernorm_backward(ElemType x_type, ElemType w_type, void* dx, void* dw, void* db,
                               const void* dy, const void* x, const void* w, const void* mean,
                               const void* rstd, int64_t N, int64_t C) {
  if (C == 0) return;
  NvtxRange range("layernorm_bwd");
  if (dx != nullptr && N > 0) {
    dispatch_norm_types(x_type, w_type, [&](auto xt, auto wt) {
      using T = typename decltype(xt)::type;
      using W = typename decltype(wt)::type;
      layernorm_dx_kernel<T, W><<<unsigned(N), kRowThreads, 0, stream()>>>(
          static_cast<T*>(dx), static_cast<const T*>(dy), static_cast<const T*>(x),
          static_cast<const W*>(w), static_cast<const stat_t<T>*>(mean),
          static_cast<const stat_t<T>*>(rstd), C);
      LAUNCH_CHECK();
    });
  }
  if (dw != nullptr || db != nullptr)
    layernorm_dw_db(x_type, w_type, dw, db, dy, x, mean, rstd, N, C);
}

}  // namespace mt::cuda
