// FlashAttention's tiled algorithm on the CPU (see attention_tiled.h).
//
// The tiled path is the readable twin of cuda/flash_attention_fwd.cu and the backward's
// cuda/flash_attention_bwd_kv.cu / _bwd_q.cu: the same tile loops and the same recurrences,
// written with plain loops. Per (batch, head):
//
// forward, one tile of query rows at a time, keys streamed tile by tile:
//     s_ij = scale * q_i . k_j                    (-inf where causal hides key j from row i)
//     m_i' = max(m_i, max_j s_ij)                 running row max
//     l_i  = l_i * exp(m_i - m_i') + sum_j exp(s_ij - m_i')
//     acc_i = acc_i * exp(m_i - m_i') + sum_j drop_ij(exp(s_ij - m_i')) v_j
//   at the end o_i = acc_i / l_i and lse_i = m_i + log(l_i): only o and lse are saved.
//
// backward, with p_ij = exp(s_ij - lse_i) recomputed and delta_i = sum_d do_id o_id:
//   pass 1, one tile of keys at a time (queries streamed):  dv_j += drop_ij(p_ij) do_i,
//           dp_ij = drop_ij(do_i . v_j),  ds_ij = p_ij (dp_ij - delta_i),  dk_j += scale ds_ij q_i
//   pass 2, one tile of queries at a time (keys streamed):  dq_i += scale ds_ij k_j
// Each gradient row is summed by one loop in a fixed order: deterministic, no shared writes.
#include "ops/attention_tiled.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace mt::ops::tiled {

namespace {

constexpr int64_t kRowTile = 64;  // query rows per tile: 64 x 64 scores = 32 KB in float64
constexpr int64_t kColTile = 64;  // keys per tile

// Flat index of element (b, t, h, d) in a contiguous [B, T, H, D] array.
inline int64_t at(const Dims& s, int64_t b, int64_t t, int64_t h) {
  return ((b * s.T + t) * s.H + h) * s.D;
}

// The keep factor of element (row, col): 0 when dropped, 1/(1-p) when kept, 1 without dropout.
template <typename acc_t>
inline acc_t keep_factor(const DropoutMask& drop, uint32_t bh, int64_t row, int64_t col) {
  if (drop.threshold == 0) return acc_t(1);
  return drop.keep(bh, static_cast<uint32_t>(row), static_cast<uint32_t>(col))
             ? static_cast<acc_t>(drop.keep_scale())
             : acc_t(0);
}

template <typename scalar_t>
scalar_t dot(const scalar_t* a, const scalar_t* b, int64_t n) {
  scalar_t s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// One tile of query rows [r0, r1) of head (b, h): the online-softmax forward.
template <typename scalar_t>
void forward_row_tile(const scalar_t* q, const scalar_t* k, const scalar_t* v, scalar_t* o,
                      scalar_t* lse, const Dims& s, int64_t b, int64_t h, int64_t r0, int64_t r1,
                      scalar_t scale, bool causal, const DropoutMask& drop) {
  const scalar_t neg_inf = -std::numeric_limits<scalar_t>::infinity();
  const uint32_t bh = static_cast<uint32_t>(b * s.H + h);
  std::vector<scalar_t> m(r1 - r0, neg_inf), l(r1 - r0, 0), acc((r1 - r0) * s.D, 0);
  std::vector<scalar_t> p(kColTile);
  const int64_t key_end = causal ? r1 : s.T;  // later key tiles are fully masked: skipped
  for (int64_t c0 = 0; c0 < key_end; c0 += kColTile) {
    const int64_t c1 = std::min(c0 + kColTile, key_end);
    for (int64_t i = r0; i < r1; ++i) {
      const scalar_t* qi = q + at(s, b, i, h);
      scalar_t* acc_i = &acc[(i - r0) * s.D];
      scalar_t tile_max = neg_inf;
      for (int64_t j = c0; j < c1; ++j) {
        p[j - c0] = (causal && j > i) ? neg_inf : scale * dot(qi, k + at(s, b, j, h), s.D);
        tile_max = std::max(tile_max, p[j - c0]);
      }
      const scalar_t m_new = std::max(m[i - r0], tile_max);
      if (m_new == neg_inf) continue;  // the whole tile is masked for this row
      const scalar_t alpha = std::exp(m[i - r0] - m_new);
      l[i - r0] *= alpha;
      for (int64_t d = 0; d < s.D; ++d) acc_i[d] *= alpha;
      for (int64_t j = c0; j < c1; ++j) {
        const scalar_t pj = std::exp(p[j - c0] - m_new);
        l[i - r0] += pj;
        const scalar_t pd = pj * keep_factor<scalar_t>(drop, bh, i, j);
        const scalar_t* vj = v + at(s, b, j, h);
        for (int64_t d = 0; d < s.D; ++d) acc_i[d] += pd * vj[d];
      }
      m[i - r0] = m_new;
    }
  }
  for (int64_t i = r0; i < r1; ++i) {
    for (int64_t d = 0; d < s.D; ++d) o[at(s, b, i, h) + d] = acc[(i - r0) * s.D + d] / l[i - r0];
    lse[(b * s.H + h) * s.T + i] = m[i - r0] + std::log(l[i - r0]);
  }
}

// What both backward passes recompute for one (row i, key j) pair: ds_ij, and the dropped
// probability for dv. Returns false when the pair is masked.
template <typename scalar_t>
struct BackwardCtx {
  const scalar_t *q, *k, *v, *dout, *lse, *delta;
  Dims s;
  scalar_t scale;
  bool causal;
  DropoutMask drop;

  bool recompute(int64_t b, int64_t h, int64_t i, int64_t j, scalar_t* pd, scalar_t* ds) const {
    if (causal && j > i) return false;
    const int64_t row = (b * s.H + h) * s.T + i;
    const scalar_t p =
        std::exp(scale * dot(q + at(s, b, i, h), k + at(s, b, j, h), s.D) - lse[row]);
    const scalar_t keep = keep_factor<scalar_t>(drop, static_cast<uint32_t>(b * s.H + h), i, j);
    const scalar_t dp = keep * dot(dout + at(s, b, i, h), v + at(s, b, j, h), s.D);
    *pd = p * keep;
    *ds = p * (dp - delta[row]);
    return true;
  }
};

// Pass 1: keys [c0, c1) of head (b, h) accumulate dk and dv over every query that sees them.
template <typename scalar_t>
void backward_key_tile(const BackwardCtx<scalar_t>& c, scalar_t* dk, scalar_t* dv, int64_t b,
                       int64_t h, int64_t c0, int64_t c1) {
  const Dims& s = c.s;
  for (int64_t j = c0; j < c1; ++j) {
    scalar_t* dkj = dk + at(s, b, j, h);
    scalar_t* dvj = dv + at(s, b, j, h);
    for (int64_t d = 0; d < s.D; ++d) dkj[d] = dvj[d] = 0;
    for (int64_t i = c.causal ? j : 0; i < s.T; ++i) {
      scalar_t pd, ds;
      if (!c.recompute(b, h, i, j, &pd, &ds)) continue;
      const scalar_t* qi = c.q + at(s, b, i, h);
      const scalar_t* doi = c.dout + at(s, b, i, h);
      for (int64_t d = 0; d < s.D; ++d) {
        dvj[d] += pd * doi[d];
        dkj[d] += c.scale * ds * qi[d];
      }
    }
  }
}

// Pass 2: query rows [r0, r1) of head (b, h) accumulate dq over every key they see.
template <typename scalar_t>
void backward_row_tile(const BackwardCtx<scalar_t>& c, scalar_t* dq, int64_t b, int64_t h,
                       int64_t r0, int64_t r1) {
  const Dims& s = c.s;
  for (int64_t i = r0; i < r1; ++i) {
    scalar_t* dqi = dq + at(s, b, i, h);
    for (int64_t d = 0; d < s.D; ++d) dqi[d] = 0;
    const int64_t key_end = c.causal ? i + 1 : s.T;
    for (int64_t j = 0; j < key_end; ++j) {
      scalar_t pd, ds;
      if (!c.recompute(b, h, i, j, &pd, &ds)) continue;
      const scalar_t* kj = c.k + at(s, b, j, h);
      for (int64_t d = 0; d < s.D; ++d) dqi[d] += c.scale * ds * kj[d];
    }
  }
}

}  // namespace

template <typename scalar_t>
void forward(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o, Tensor& lse,
             const Dims& s, double scale, bool causal, const DropoutMask& drop) {
  const scalar_t *qp = q.data<scalar_t>(), *kp = k.data<scalar_t>(), *vp = v.data<scalar_t>();
  scalar_t *op = o.data<scalar_t>(), *lp = lse.data<scalar_t>();
  const int64_t tiles = (s.T + kRowTile - 1) / kRowTile;
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t bh = 0; bh < s.B * s.H; ++bh) {
    for (int64_t t = 0; t < tiles; ++t) {
      forward_row_tile<scalar_t>(qp, kp, vp, op, lp, s, bh / s.H, bh % s.H, t * kRowTile,
                                 std::min((t + 1) * kRowTile, s.T), static_cast<scalar_t>(scale),
                                 causal, drop);
    }
  }
}

template <typename scalar_t>
AttentionGrads backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                        const Tensor& lse, const Tensor& dout, const Dims& s, double scale,
                        bool causal, const DropoutMask& drop) {
  AttentionGrads g{Tensor::empty(q.shape(), q.dtype()), Tensor::empty(q.shape(), q.dtype()),
                   Tensor::empty(q.shape(), q.dtype())};
  // delta_i = sum_d dout_id * o_id  (= sum_j p_ij dp_ij: the softmax backward's row term)
  Tensor delta = Tensor::empty({s.B, s.H, s.T}, q.dtype());
  const scalar_t *op = o.data<scalar_t>(), *dop = dout.data<scalar_t>();
  scalar_t* dl = delta.data<scalar_t>();
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h)
      for (int64_t i = 0; i < s.T; ++i)
        dl[(b * s.H + h) * s.T + i] = dot(op + at(s, b, i, h), dop + at(s, b, i, h), s.D);

  BackwardCtx<scalar_t> c{q.data<scalar_t>(),
                          k.data<scalar_t>(),
                          v.data<scalar_t>(),
                          dop,
                          lse.data<scalar_t>(),
                          dl,
                          s,
                          static_cast<scalar_t>(scale),
                          causal,
                          drop};
  scalar_t *dq = g.dq.data<scalar_t>(), *dk = g.dk.data<scalar_t>(), *dv = g.dv.data<scalar_t>();
  const int64_t tiles = (s.T + kColTile - 1) / kColTile;
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t bh = 0; bh < s.B * s.H; ++bh)
    for (int64_t t = 0; t < tiles; ++t)
      backward_key_tile(c, dk, dv, bh / s.H, bh % s.H, t * kColTile,
                        std::min((t + 1) * kColTile, s.T));
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t bh = 0; bh < s.B * s.H; ++bh)
    for (int64_t t = 0; t < tiles; ++t)
      backward_row_tile(c, dq, bh / s.H, bh % s.H, t * kRowTile, std::min((t + 1) * kRowTile, s.T));
  return g;
}

template void forward<float>(const Tensor&, const Tensor&, const Tensor&, Tensor&, Tensor&,
                             const Dims&, double, bool, const DropoutMask&);
template void forward<double>(const Tensor&, const Tensor&, const Tensor&, Tensor&, Tensor&,
                              const Dims&, double, bool, const DropoutMask&);
template AttentionGrads backward<float>(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                        const Tensor&, const Tensor&, const Dims&, double, bool,
                                        const DropoutMask&);
template AttentionGrads backward<double>(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                         const Tensor&, const Tensor&, const Dims&, double, bool,
                                         const DropoutMask&);

}  // namespace mt::ops::tiled
