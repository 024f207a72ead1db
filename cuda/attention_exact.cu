// Exact-precision attention on the GPU: float32 and float64 inputs, computed in float64.
//
// Why this path exists. FlashAttention (cuda/flash_attention_*.cu) runs on bf16/fp16 tensor
// cores: fed float32 it would round q, k, v to bf16 (8 mantissa bits) and its results would be
// ~1e-3 off the float32 answer. Two users need attention in the inputs' own precision:
//   - the "fp32" precision mode: a model trained in float32 on the GPU must follow the same loss
//     curve as on the CPU (within 1e-4 relative), gradients included;
//   - the float64 checks: tests compare whole models on the GPU against float64 on the CPU.
// ops/attention.cpp therefore sends CUDA float32 and float64 inputs here, bf16 to FlashAttention.
// This is the check path, not the fast path: plain CUDA cores, no tiling through shared memory.
//
// What it computes is the CPU reference's function (ops/attention.cpp, attention_naive.cpp):
//   s_ij = scale * q_i . k_j   (j > i hidden when causal),   p_ij = exp(s_ij - lse_i)
//   out_i = sum_j p_ij keep_ij v_j,   lse_i = log sum_j exp(s_ij)
// with keep_ij = 0 or 1/(1-p) from the shared mask function (cuda/attention_dropout.h) and, as
// on the CPU, the float-rounded 1/(1-p) and scale. Backward, with delta_i = dout_i . out_i:
//   dp_ij = keep_ij dout_i . v_j,   ds_ij = p_ij (dp_ij - delta_i)
//   dv_j = sum_i p_ij keep_ij dout_i,   dk_j = scale sum_i ds_ij q_i,   dq_i = scale sum_j ds_ij
//   k_j
//
// How. A group of G lanes owns one row (G = min(32, next power of two >= D), so 32 / G rows a
// warp); lane g of the group holds head-dim elements g, g + G, ... (at most 4: D <= 128). A dot
// product is each lane's partial sum, then a butterfly of __shfl_xor within the group: a + b and
// b + a are the same float, so every lane of the group ends with the same bits and takes the
// same branches. The rows of a warp are neighbours of one (batch, head), so the key (or query)
// row all groups read at a step is the same: one broadcast load.
//   - forward: one group per query row, keys in order, an online softmax (running max m, sum l,
//     accumulator acc rescaled by exp(m - m') when the max grows); writes out and lse.
//   - backward: delta_i per query row; dq with one group per query row (keys streamed); dk, dv
//     with one group per key row (queries streamed). Each recomputes p from lse; every gradient
//     element is summed by one group in one order: deterministic, no atomics.
// Every product and sum is in float64 whatever the input type (a product of two floats is exact
// in double), so a float32 result is the float64 result rounded once, plus the rounding of the
// float32 out and lse the backward reads. Float64 exp costs more than float's, but the seed
// shape (B=32, H=8, T=2048, D=8, causal, dropout) still runs forward and backward in well under
// half a second (tests/test_cuda_attention_exact.cpp times it; docs/flash_attention.md, "The
// exact path").
#include <cmath>

#include "cuda/attention_dropout.h"
#include "cuda/attention_exact.cuh"
#include "cuda/check.cuh"
#include "cuda/nvtx.h"

namespace mt::cuda {

namespace {

// The mask's stream: the launch's offset, plus the device-side base of a CUDA graph's replays.
__device__ __forceinline__ uint64_t stream_of(const ExactAttentionParams& p) {
  return p.offset + (p.offset_base != nullptr ? *p.offset_base : 0);
}

constexpr int kWarps = 4;                                // 128 threads a block
constexpr int kChunks = kExactAttentionMaxHeadDim / 32;  // head-dim elements a lane, at most
static_assert(kChunks * 32 == kExactAttentionMaxHeadDim, "D = 128 is 32 lanes x 4 elements");

// What every kernel needs besides the params: the lane grouping and the dropout keep factor.
struct Geometry {
  int G = 32;               // lanes a row, a power of two
  int rows_per_block = 0;   // kWarps * 32 / G
  int tiles = 0;            // row tiles a (batch, head)
  double keep_scale = 1.0;  // the float 1/(1-p) of cuda/attention_dropout.h, as the CPU uses it
};

// The row (query row, or key row in the dk/dv kernel) this thread's group owns.
struct Slot {
  int b, h;
  uint32_t bh;  // b * H + h: the dropout mask's head index
  int row;      // valid when < T
  bool valid;
  int lane;                   // the lane within the group: owns elements lane + G c
  int warp_first, warp_last;  // the first and last valid rows of the warp
};

__device__ __forceinline__ Slot slot_of(const ExactAttentionParams& p, const Geometry& g) {
  const int rows_per_warp = 32 / g.G;
  const int64_t bh = blockIdx.x / g.tiles;
  const int tile = static_cast<int>(blockIdx.x % g.tiles);
  const int warp = threadIdx.x / 32, lane32 = threadIdx.x % 32;
  Slot s;
  s.b = static_cast<int>(bh / p.H);
  s.h = static_cast<int>(bh % p.H);
  s.bh = static_cast<uint32_t>(bh);
  s.warp_first = tile * g.rows_per_block + warp * rows_per_warp;
  s.warp_last = min(s.warp_first + rows_per_warp, p.T) - 1;
  s.row = s.warp_first + lane32 / g.G;
  s.valid = s.row < p.T;
  s.lane = lane32 % g.G;
  return s;
}

// Row t of head (b, h) of a strided [B, T, H, D] tensor.
template <typename scalar_t>
__device__ __forceinline__ const scalar_t* row_at(const void* base, const AttnStrides& st, int b,
                                                  int t, int h) {
  return static_cast<const scalar_t*>(base) + b * st.b + t * st.t + h * st.h;
}

// This lane's head-dim elements of a row, in float64 (zeros past D, or for an invalid row).
template <typename scalar_t>
__device__ __forceinline__ void load_slice(double (&x)[kChunks], const scalar_t* row, bool valid,
                                           int lane, int G, int D) {
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const int d = lane + c * G;
    x[c] = valid && d < D ? static_cast<double>(row[d]) : 0.0;
  }
}

__device__ __forceinline__ double dot_slice(const double (&a)[kChunks],
                                            const double (&b)[kChunks]) {
  double s = 0.0;
#pragma unroll
  for (int c = 0; c < kChunks; ++c) s += a[c] * b[c];
  return s;
}

// The sum over the group's G lanes, the same bits in every lane (a butterfly: x + y == y + x).
__device__ __forceinline__ double group_sum(double x, int G) {
  for (int off = G / 2; off > 0; off >>= 1) x += __shfl_xor_sync(0xffffffffu, x, off);
  return x;
}

// This lane's elements of an output row, rounded once to scalar_t.
template <typename scalar_t>
__device__ __forceinline__ void store_slice(scalar_t* row, const double (&x)[kChunks], int lane,
                                            int G, int D, double factor) {
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const int d = lane + c * G;
    if (d < D) row[d] = static_cast<scalar_t>(factor * x[c]);
  }
}

// The slot's row of a [B, T, H, D] gradient (dq, dk, dv) with strides st.
template <typename scalar_t>
__device__ __forceinline__ scalar_t* grad_row(void* base, const AttnStrides& st, const Slot& s) {
  return static_cast<scalar_t*>(base) + s.b * st.b + s.row * st.t + s.h * st.h;
}

// The keep factors of one query row while its keys go by in order 0, 1, 2, ...: one draw per
// 16 keys (cuda/attention_dropout.h), refreshed when j % 16 == 0. next(j) must be called for
// every j from 0 on, visible or not.
struct RowKeep {
  DropoutHead head;
  uint32_t threshold;
  double scale;
  uint32_t row_label;
  DropoutDraw bits{};

  __device__ RowKeep(const ExactAttentionParams& p, double keep_scale, uint32_t bh, uint32_t row)
      : head(DropoutKey::of(p.seed, stream_of(p)).head(bh)),
        threshold(p.dropout_threshold),
        scale(keep_scale),
        row_label(head.row_label(row)) {}
  __device__ __forceinline__ double next(int j) {
    if (threshold == 0) return 1.0;
    if ((j & 15) == 0) bits = DropoutDraw::of(row_label ^ head.col_label(uint32_t(j) >> 4));
    return bits.byte(j & 15) >= threshold ? scale : 0.0;
  }
};

// Forward: one group per query row, an online softmax over the keys in order.
template <typename scalar_t>
__global__ void __launch_bounds__(kWarps * 32)
    exact_forward_kernel(const ExactAttentionParams p, const Geometry g) {
  const Slot s = slot_of(p, g);
  if (s.warp_first >= p.T) return;  // the whole warp is past the end
  const int G = g.G, D = p.D;
  double qi[kChunks], kj[kChunks], vj[kChunks], acc[kChunks] = {};
  load_slice(qi, row_at<scalar_t>(p.q, p.q_strides, s.b, s.row, s.h), s.valid, s.lane, G, D);
  RowKeep keep(p, g.keep_scale, s.bh, static_cast<uint32_t>(s.row));
  const double scale = p.scale;
  double m = -INFINITY, l = 0.0;
  // Warp-uniform bounds, so that every lane reaches every shuffle.
  const int key_end = p.causal ? s.warp_last + 1 : p.T;
  for (int j = 0; j < key_end; ++j) {
    load_slice(kj, row_at<scalar_t>(p.k, p.k_strides, s.b, j, s.h), true, s.lane, G, D);
    const double sij = scale * group_sum(dot_slice(qi, kj), G);
    const double kf = keep.next(j);
    if (s.valid && !(p.causal && j > s.row)) {
      if (sij > m) {  // the max grows: rescale what was summed against the old one
        const double alpha = exp(m - sij);
        l *= alpha;
#pragma unroll
        for (int c = 0; c < kChunks; ++c) acc[c] *= alpha;
        m = sij;
      }
      const double pij = exp(sij - m);
      l += pij;
      load_slice(vj, row_at<scalar_t>(p.v, p.v_strides, s.b, j, s.h), true, s.lane, G, D);
#pragma unroll
      for (int c = 0; c < kChunks; ++c) acc[c] += pij * kf * vj[c];
    }
  }
  if (!s.valid) return;
  scalar_t* out = static_cast<scalar_t*>(p.out) + s.b * p.out_strides.b + s.row * p.out_strides.t +
                  s.h * p.out_strides.h;
  store_slice(out, acc, s.lane, G, D, 1.0 / l);
  if (s.lane == 0) {
    static_cast<scalar_t*>(p.lse)[static_cast<int64_t>(s.bh) * p.T + s.row] =
        static_cast<scalar_t>(m + log(l));
  }
}

// delta_i = dout_i . out_i: the softmax backward's row term (= sum_j p_ij dp_ij, dropout included,
// since out already carries the dropped, rescaled probabilities).
template <typename scalar_t>
__global__ void __launch_bounds__(kWarps * 32)
    exact_delta_kernel(const ExactAttentionParams p, const Geometry g) {
  const Slot s = slot_of(p, g);
  if (s.warp_first >= p.T) return;
  double o[kChunks], d_o[kChunks];
  load_slice(o, row_at<scalar_t>(p.out, p.out_strides, s.b, s.row, s.h), s.valid, s.lane, g.G, p.D);
  load_slice(d_o, row_at<scalar_t>(p.dout, p.dout_strides, s.b, s.row, s.h), s.valid, s.lane, g.G,
             p.D);
  const double delta = group_sum(dot_slice(o, d_o), g.G);
  if (s.valid && s.lane == 0) p.delta[static_cast<int64_t>(s.bh) * p.T + s.row] = delta;
}

// dq: one group per query row, keys in order: dq_i = scale sum_j p_ij (dp_ij - delta_i) k_j.
template <typename scalar_t>
__global__ void __launch_bounds__(kWarps * 32)
    exact_backward_q_kernel(const ExactAttentionParams p, const Geometry g) {
  const Slot s = slot_of(p, g);
  if (s.warp_first >= p.T) return;
  const int G = g.G, D = p.D;
  double qi[kChunks], doi[kChunks], kj[kChunks], vj[kChunks], dq[kChunks] = {};
  load_slice(qi, row_at<scalar_t>(p.q, p.q_strides, s.b, s.row, s.h), s.valid, s.lane, G, D);
  load_slice(doi, row_at<scalar_t>(p.dout, p.dout_strides, s.b, s.row, s.h), s.valid, s.lane, G, D);
  const int64_t stat = static_cast<int64_t>(s.bh) * p.T + s.row;
  const double lse = s.valid ? static_cast<double>(static_cast<const scalar_t*>(p.lse)[stat]) : 0.0;
  const double delta = s.valid ? p.delta[stat] : 0.0;
  RowKeep keep(p, g.keep_scale, s.bh, static_cast<uint32_t>(s.row));
  const double scale = p.scale;
  const int key_end = p.causal ? s.warp_last + 1 : p.T;
  for (int j = 0; j < key_end; ++j) {
    load_slice(kj, row_at<scalar_t>(p.k, p.k_strides, s.b, j, s.h), true, s.lane, G, D);
    load_slice(vj, row_at<scalar_t>(p.v, p.v_strides, s.b, j, s.h), true, s.lane, G, D);
    const double qk = group_sum(dot_slice(qi, kj), G);
    const double dov = group_sum(dot_slice(doi, vj), G);
    const double kf = keep.next(j);
    if (s.valid && !(p.causal && j > s.row)) {
      const double pij = exp(scale * qk - lse);
      const double ds = pij * (kf * dov - delta);
#pragma unroll
      for (int c = 0; c < kChunks; ++c) dq[c] += ds * kj[c];
    }
  }
  if (s.valid) store_slice(grad_row<scalar_t>(p.dq, p.dq_strides, s), dq, s.lane, G, D, scale);
}

// dk, dv: one group per key row j, queries in order (from j on when causal):
//   dv_j = sum_i p_ij keep_ij dout_i,   dk_j = scale sum_i p_ij (dp_ij - delta_i) q_i.
template <typename scalar_t>
__global__ void __launch_bounds__(kWarps * 32)
    exact_backward_kv_kernel(const ExactAttentionParams p, const Geometry g) {
  const Slot s = slot_of(p, g);  // s.row is a key row here
  if (s.warp_first >= p.T) return;
  const int G = g.G, D = p.D;
  double kj[kChunks], vj[kChunks], qi[kChunks], doi[kChunks], dk[kChunks] = {}, dv[kChunks] = {};
  load_slice(kj, row_at<scalar_t>(p.k, p.k_strides, s.b, s.row, s.h), s.valid, s.lane, G, D);
  load_slice(vj, row_at<scalar_t>(p.v, p.v_strides, s.b, s.row, s.h), s.valid, s.lane, G, D);
  const DropoutHead head = DropoutKey::of(p.seed, stream_of(p)).head(s.bh);
  const scalar_t* lse = static_cast<const scalar_t*>(p.lse) + static_cast<int64_t>(s.bh) * p.T;
  const double* delta = p.delta + static_cast<int64_t>(s.bh) * p.T;
  const double scale = p.scale;
  for (int i = p.causal ? s.warp_first : 0; i < p.T; ++i) {
    load_slice(qi, row_at<scalar_t>(p.q, p.q_strides, s.b, i, s.h), true, s.lane, G, D);
    load_slice(doi, row_at<scalar_t>(p.dout, p.dout_strides, s.b, i, s.h), true, s.lane, G, D);
    const double qk = group_sum(dot_slice(qi, kj), G);
    const double dov = group_sum(dot_slice(doi, vj), G);
    if (s.valid && !(p.causal && s.row > i)) {
      // Keys of one query row are not consecutive here: one draw per element.
      const double kf =
          p.dropout_threshold == 0 ? 1.0
          : head.byte(static_cast<uint32_t>(i), static_cast<uint32_t>(s.row)) >= p.dropout_threshold
              ? g.keep_scale
              : 0.0;
      const double pij = exp(scale * qk - static_cast<double>(lse[i]));
      const double ds = pij * (kf * dov - delta[i]);
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        dv[c] += pij * kf * doi[c];
        dk[c] += ds * qi[c];
      }
    }
  }
  if (!s.valid) return;
  store_slice(grad_row<scalar_t>(p.dk, p.dk_strides, s), dk, s.lane, G, D, scale);
  store_slice(grad_row<scalar_t>(p.dv, p.dv_strides, s), dv, s.lane, G, D, 1.0);
}

Geometry geometry_of(const ExactAttentionParams& p, const char* op) {
  CHECK(p.D >= 1 && p.D <= kExactAttentionMaxHeadDim,
        "{}: the exact (float32/float64) CUDA attention supports head dims 1 to {}, got {}", op,
        kExactAttentionMaxHeadDim, p.D);
  CHECK(p.B >= 1 && p.T >= 1 && p.H >= 1, "{}: empty input [B={}, T={}, H={}, D={}]", op, p.B, p.T,
        p.H, p.D);
  Geometry g;
  g.G = 1;
  while (g.G < p.D && g.G < 32) g.G *= 2;
  g.rows_per_block = kWarps * 32 / g.G;
  g.tiles = (p.T + g.rows_per_block - 1) / g.rows_per_block;
  CHECK(int64_t(p.B) * p.H * g.tiles < (int64_t(1) << 31),
        "{}: too large for the grid: B={} H={} T={}", op, p.B, p.H, p.T);
  if (p.dropout_threshold != 0) {
    g.keep_scale = AttentionDropout{p.seed, p.offset, p.dropout_threshold}.keep_scale();
  }
  return g;
}

template <typename Kernel>
void launch(Kernel kernel, const ExactAttentionParams& p, const Geometry& g) {
  const unsigned blocks = static_cast<unsigned>(int64_t(p.B) * p.H * g.tiles);
  kernel<<<blocks, kWarps * 32, 0, stream()>>>(p, g);
  LAUNCH_CHECK();
}

}  // namespace

void exact_attention_forward(const ExactAttentionParams& p) {
  NvtxRange range("attention_fwd_exact");
  const Geometry g = geometry_of(p, "exact_attention_forward");
  if (p.elem == ExactElem::F32) {
    launch(exact_forward_kernel<float>, p, g);
  } else {
    launch(exact_forward_kernel<double>, p, g);
  }
}

void exact_attention_backward(const ExactAttentionParams& p) {
  NvtxRange range("attention_bwd_exact");
  const Geometry g = geometry_of(p, "exact_attention_backward");
  CHECK(grad_strides_set(p),
        "exact_attention_backward: dq_strides, dk_strides and dv_strides must be set "
        "(AttentionArgs)");
  if (p.elem == ExactElem::F32) {
    launch(exact_delta_kernel<float>, p, g);
    launch(exact_backward_q_kernel<float>, p, g);
    launch(exact_backward_kv_kernel<float>, p, g);
  } else {
    launch(exact_delta_kernel<double>, p, g);
    launch(exact_backward_q_kernel<double>, p, g);
    launch(exact_backward_kv_kernel<double>, p, g);
  }
}

}  // namespace mt::cuda
