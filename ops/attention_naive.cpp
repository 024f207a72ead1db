// The naive attention reference: materializes the T x T scores of one (batch, head) at a time,
// exactly as the formula reads. O(T^2) memory; for tests and for teaching.
//
//   S = scale * Q K^T (+ causal -inf)     P = softmax_rows(S)     Pd = P * keep / (1 - p)
//   O = Pd V
// and backward:
//   dV = Pd^T dO      dPd = dO V^T      dP = dPd * keep / (1 - p)
//   dS = P * (dP - rowsum(P * dP))      dQ = scale dS K      dK = scale dS^T Q
//
// With emulate_bf16 every matrix the kernel holds in bf16 is rounded to bf16 after it is
// computed (S, P, O, dP, dS, dQ, dK, dV): the "naive bf16 implementation" whose error against
// the float64 reference bounds the CUDA kernel's (docs/design.md, Numerics).
#include <cmath>
#include <limits>
#include <vector>

#include "cuda/attention_dropout.h"
#include "ops/attention.h"

namespace mt::ops {

namespace {

struct NaiveDims {
  int64_t B, T, H, D;
  int64_t at(int64_t b, int64_t t, int64_t h) const { return ((b * T + t) * H + h) * D; }
};

template <typename scalar_t>
struct Naive {
  NaiveDims s;
  scalar_t scale;
  bool causal;
  bool round;
  DropoutMask drop;

  scalar_t r(scalar_t x) const {
    return round ? static_cast<scalar_t>(round_to_bf16(static_cast<float>(x))) : x;
  }
  scalar_t keep(int64_t b, int64_t h, int64_t i, int64_t j) const {
    if (drop.threshold == 0) return 1;
    const auto bh = static_cast<uint32_t>(b * s.H + h);
    return drop.keep(bh, static_cast<uint32_t>(i), static_cast<uint32_t>(j))
               ? static_cast<scalar_t>(drop.keep_scale())
               : 0;
  }

  // P (T x T, row-major) of head (b, h), rounded as the kernel's bf16 P would be when emulating.
  std::vector<scalar_t> probs(const scalar_t* q, const scalar_t* k, int64_t b, int64_t h) const {
    const int64_t T = s.T;
    std::vector<scalar_t> p(T * T);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < T; ++i) {
      scalar_t mx = -std::numeric_limits<scalar_t>::infinity();
      for (int64_t j = 0; j < T; ++j) {
        scalar_t dotv = 0;
        for (int64_t d = 0; d < s.D; ++d) dotv += q[s.at(b, i, h) + d] * k[s.at(b, j, h) + d];
        p[i * T + j] =
            (causal && j > i) ? -std::numeric_limits<scalar_t>::infinity() : r(scale * dotv);
        mx = std::max(mx, p[i * T + j]);
      }
      scalar_t sum = 0;
      for (int64_t j = 0; j < T; ++j) sum += (p[i * T + j] = std::exp(p[i * T + j] - mx));
      for (int64_t j = 0; j < T; ++j) p[i * T + j] = p[i * T + j] / sum;
    }
    return p;
  }

  // Heads one after the other, rows in parallel: the tests run single heads of T = 4099.
  void forward(const scalar_t* q, const scalar_t* k, const scalar_t* v, scalar_t* o) const {
    for (int64_t b = 0; b < s.B; ++b) {
      for (int64_t h = 0; h < s.H; ++h) {
        std::vector<scalar_t> p = probs(q, k, b, h);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < s.T; ++i) {
          for (int64_t d = 0; d < s.D; ++d) {
            scalar_t acc = 0;
            for (int64_t j = 0; j < s.T; ++j)
              acc += r(p[i * s.T + j] * keep(b, h, i, j)) * v[s.at(b, j, h) + d];
            o[s.at(b, i, h) + d] = r(acc);
          }
        }
      }
    }
  }

  void backward_head(const scalar_t* q, const scalar_t* k, const scalar_t* v, const scalar_t* dout,
                     scalar_t* dq, scalar_t* dk, scalar_t* dv, int64_t b, int64_t h) const {
    const int64_t T = s.T, D = s.D;
    std::vector<scalar_t> p = probs(q, k, b, h), ds(T * T);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < T; ++i) {
      scalar_t rowsum = 0;
      for (int64_t j = 0; j < T; ++j) {
        scalar_t dpd = 0;
        for (int64_t d = 0; d < D; ++d) dpd += dout[s.at(b, i, h) + d] * v[s.at(b, j, h) + d];
        ds[i * T + j] = r(dpd * keep(b, h, i, j));  // dP
        rowsum += p[i * T + j] * ds[i * T + j];
      }
      for (int64_t j = 0; j < T; ++j) ds[i * T + j] = r(p[i * T + j] * (ds[i * T + j] - rowsum));
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < T; ++i) {
      std::vector<scalar_t> aq(D, 0), ak(D, 0), av(D, 0);
      for (int64_t j = 0; j < T; ++j) {
        const scalar_t dsq = ds[i * T + j], dsk = ds[j * T + i];
        const scalar_t pv = r(p[j * T + i] * keep(b, h, j, i));
        for (int64_t d = 0; d < D; ++d) {
          aq[d] += dsq * k[s.at(b, j, h) + d];
          ak[d] += dsk * q[s.at(b, j, h) + d];
          av[d] += pv * dout[s.at(b, j, h) + d];
        }
      }
      for (int64_t d = 0; d < D; ++d) {
        dq[s.at(b, i, h) + d] = r(scale * aq[d]);
        dk[s.at(b, i, h) + d] = r(scale * ak[d]);
        dv[s.at(b, i, h) + d] = r(av[d]);
      }
    }
  }
};

template <typename scalar_t>
Naive<scalar_t> make_naive(const Tensor& q, const AttentionOptions& o, bool emulate_bf16) {
  AttentionDropout drop;
  drop.seed = o.seed;
  drop.offset = o.offset;
  drop.threshold = AttentionDropout::threshold_for(o.dropout_p);
  NaiveDims s{q.size(0), q.size(1), q.size(2), q.size(3)};
  return Naive<scalar_t>{s, static_cast<scalar_t>(attention_scale(o, s.D)), o.causal, emulate_bf16,
                         DropoutMask(drop)};
}

void check_naive(const Tensor& q, const Tensor& k, const Tensor& v, const char* op) {
  CHECK(q.dim() == 4 && k.shape() == q.shape() && v.shape() == q.shape(),
        "{}: expected q, k, v of one shape [B, T, H, D], got q {}, k {}, v {}", op, q.describe(),
        k.describe(), v.describe());
  CHECK(q.dtype() == k.dtype() && q.dtype() == v.dtype() && is_floating(q.dtype()),
        "{}: expected q, k, v of one floating dtype, got q {}, k {}, v {}", op, q.describe(),
        k.describe(), v.describe());
}

DType naive_dtype(DType d) { return d == kFloat64 ? kFloat64 : kFloat32; }

}  // namespace

Tensor attention_naive_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                               const AttentionOptions& options, bool emulate_bf16) {
  check_naive(q, k, v, "attention_naive_forward");
  const DType ct = naive_dtype(q.dtype());
  Tensor qc = q.cpu().to(ct).contiguous(), kc = k.cpu().to(ct).contiguous();
  Tensor vc = v.cpu().to(ct).contiguous();
  Tensor out = Tensor::empty(q.shape(), ct);
  if (ct == kFloat64) {
    make_naive<double>(qc, options, emulate_bf16)
        .forward(qc.data<double>(), kc.data<double>(), vc.data<double>(), out.data<double>());
  } else {
    make_naive<float>(qc, options, emulate_bf16)
        .forward(qc.data<float>(), kc.data<float>(), vc.data<float>(), out.data<float>());
  }
  return out;
}

AttentionGrads attention_naive_backward(const Tensor& q, const Tensor& k, const Tensor& v,
                                        const Tensor& dout, const AttentionOptions& options,
                                        bool emulate_bf16) {
  check_naive(q, k, v, "attention_naive_backward");
  CHECK(dout.shape() == q.shape(), "attention_naive_backward: dout {} must match q {}",
        dout.describe(), q.describe());
  const DType ct = naive_dtype(q.dtype());
  auto prep = [&](const Tensor& t) { return t.cpu().to(ct).contiguous(); };
  Tensor qc = prep(q), kc = prep(k), vc = prep(v), dc = prep(dout);
  AttentionGrads g{Tensor::empty(q.shape(), ct), Tensor::empty(q.shape(), ct),
                   Tensor::empty(q.shape(), ct)};
  auto run = [&](auto zero) {
    using scalar_t = decltype(zero);
    auto n = make_naive<scalar_t>(qc, options, emulate_bf16);
    for (int64_t b = 0; b < n.s.B; ++b)
      for (int64_t h = 0; h < n.s.H; ++h)
        n.backward_head(qc.data<scalar_t>(), kc.data<scalar_t>(), vc.data<scalar_t>(),
                        dc.data<scalar_t>(), g.dq.data<scalar_t>(), g.dk.data<scalar_t>(),
                        g.dv.data<scalar_t>(), b, h);
  };
  if (ct == kFloat64) {
    run(0.0);
  } else {
    run(0.0f);
  }
  return g;
}

}  // namespace mt::ops
