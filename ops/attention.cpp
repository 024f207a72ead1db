// Attention: the checks and the dispatch (the CPU's tiled algorithm in ops/attention_tiled.cpp,
// the GPU's kernels in cuda/), and the backward into a caller's gradient views.
#include "ops/attention.h"

#include <cmath>
#include <vector>

#include "cuda/attention_dropout.h"
#include "cuda/attention_exact.cuh"
#include "cuda/flash_attention.cuh"
#include "cuda/flash_attention_sm90.cuh"
#include "cuda/graph.h"
#include "ops/attention_tiled.h"
#include "ops/cuda_dispatch.h"

namespace mt::ops {

namespace {

using tiled::Dims;

Dims check_qkv(const Tensor& q, const Tensor& k, const Tensor& v, const char* op) {
  CHECK(q.dim() == 4, "{}: expected q of shape [B, T, H, D], got {}", op, q.describe());
  CHECK(k.shape() == q.shape() && v.shape() == q.shape(),
        "{}: q, k, v must have the same shape [B, T, H, D], got q {}, k {}, v {}", op, q.describe(),
        k.describe(), v.describe());
  CHECK(k.dtype() == q.dtype() && v.dtype() == q.dtype(),
        "{}: q, k, v must have the same dtype, got q {}, k {}, v {}", op, q.describe(),
        k.describe(), v.describe());
  CHECK(k.device() == q.device() && v.device() == q.device(),
        "{}: q, k, v must be on one device, got q {}, k {}, v {}", op, q.describe(), k.describe(),
        v.describe());
  CHECK(is_floating(q.dtype()), "{}: expected floating q, k, v, got {}", op, q.describe());
  CHECK(q.numel() > 0, "{}: empty input {}", op, q.describe());
  return {q.size(0), q.size(1), q.size(2), q.size(3)};
}

void check_options(const AttentionOptions& o, const Tensor& q, const char* op) {
  CHECK(o.dropout_p >= 0.0f && o.dropout_p < 1.0f, "{}: dropout_p must be in [0, 1), got {}", op,
        o.dropout_p);
  CHECK(o.scale >= 0.0f && std::isfinite(o.scale), "{}: scale must be finite and >= 0, got {}", op,
        o.scale);
  // A mask stream passed by value would be baked into a CUDA graph: every replay would draw
  // the captured call's mask.
  CHECK(!cuda::capturing() || o.dropout_p == 0.0f || o.offset_base != nullptr,
        "{}: dropout inside a CUDA graph capture needs options.offset_base (the generator's "
        "device_base()), or every replay would draw the same mask",
        op);
  // A device-side mask stream is read by the CUDA kernels only.
  CHECK(o.offset_base == nullptr || q.is_cuda(),
        "{}: options.offset_base (a device-side dropout stream) needs CUDA tensors, got q {}", op,
        q.describe());
}

DropoutMask make_dropout(const AttentionOptions& o) {
  AttentionDropout d;
  d.seed = o.seed;
  d.offset = o.offset;
  d.threshold = AttentionDropout::threshold_for(o.dropout_p);
  return DropoutMask(d);
}

// The CPU computes float32 and float64; bf16 inputs are computed in float32.
DType cpu_compute_dtype(DType dtype) { return dtype == kFloat64 ? kFloat64 : kFloat32; }

#ifdef MT_WITH_CUDA
cuda::AttnStrides strides_of(const Tensor& t) { return {t.stride(0), t.stride(1), t.stride(2)}; }

// The fields both kernels' params share (FlashAttentionParams, ExactAttentionParams).
template <typename Params>
Params kernel_params(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& o) {
  CHECK(q.size(1) < (int64_t(1) << 31) && q.size(0) * q.size(2) < (int64_t(1) << 31),
        "attention: too large for the CUDA kernel: q {}", q.describe());
  Params p;
  p.B = static_cast<int>(q.size(0));
  p.T = static_cast<int>(q.size(1));
  p.H = static_cast<int>(q.size(2));
  p.D = static_cast<int>(q.size(3));
  p.scale = attention_scale(o, q.size(3));
  p.causal = o.causal;
  p.seed = o.seed;
  p.offset = o.offset;
  p.offset_base = o.offset_base;
  p.dropout_threshold = AttentionDropout::threshold_for(o.dropout_p);
  p.q = q.raw_data();
  p.k = k.raw_data();
  p.v = v.raw_data();
  p.q_strides = strides_of(q);
  p.k_strides = strides_of(k);
  p.v_strides = strides_of(v);
  return p;
}

// ---- float32 and float64: the exact kernels (cuda/attention_exact.cu) -------------------------

// The exact kernels read q, k, v, out, dout through their strides, with the head dim contiguous;
// a view with another head-dim stride is copied.
Tensor exact_layout(const Tensor& t, DType dtype) {
  Tensor x = t.to(dtype);
  return x.stride(3) == 1 || x.size(3) == 1 ? x : x.contiguous();
}

cuda::ExactAttentionParams exact_params(const Tensor& q, const Tensor& k, const Tensor& v,
                                        const AttentionOptions& o) {
  CHECK(q.size(3) <= cuda::kExactAttentionMaxHeadDim,
        "attention: the float32/float64 CUDA kernel supports head dims up to {}, got q {}",
        cuda::kExactAttentionMaxHeadDim, q.describe());
  auto p = kernel_params<cuda::ExactAttentionParams>(q, k, v, o);
  p.elem = q.dtype() == kFloat64 ? cuda::ExactElem::F64 : cuda::ExactElem::F32;
  return p;
}

// out and lse in the inputs' dtype, as the CPU path gives them.
Tensor forward_exact(const Tensor& q0, const Tensor& k0, const Tensor& v0,
                     const AttentionOptions& options, Tensor* lse_out) {
  const DType dt = q0.dtype();
  Tensor q = exact_layout(q0, dt), k = exact_layout(k0, dt), v = exact_layout(v0, dt);
  cuda::ExactAttentionParams p = exact_params(q, k, v, options);
  Tensor out = Tensor::empty(q.shape(), dt, q.device());
  Tensor lse = Tensor::empty({q.size(0), q.size(2), q.size(1)}, dt, q.device());
  p.out = out.raw_data();
  p.out_strides = strides_of(out);
  p.lse = lse.raw_data();
  cuda::exact_attention_forward(p);
  if (lse_out) *lse_out = lse;
  return out;
}

// The gradient tensor a kernel writes: the caller's own when the kernel can write its layout
// (`writable`), else a new contiguous one that finish_grad copies into the caller's.
Tensor grad_target(const Tensor& grad, bool writable) {
  return writable ? grad : Tensor::empty(grad.shape(), grad.dtype(), grad.device());
}

void finish_grad(const Tensor& written, const Tensor& grad) {
  if (written.storage() == grad.storage()) return;
  Tensor dst = grad;
  dst.copy_(written);
}

void set_grads(cuda::AttentionArgs& p, const AttentionGrads& g) {
  p.dq = g.dq.raw_data();
  p.dk = g.dk.raw_data();
  p.dv = g.dv.raw_data();
  p.dq_strides = strides_of(g.dq);
  p.dk_strides = strides_of(g.dk);
  p.dv_strides = strides_of(g.dv);
}

// dq, dk, dv in the inputs' dtype; the kernels write any layout with a contiguous head dim.
void backward_exact(const Tensor& q0, const Tensor& k0, const Tensor& v0, const Tensor& out0,
                    const Tensor& lse0, const Tensor& dout0, const AttentionOptions& options,
                    const AttentionGrads& grads) {
  const DType dt = q0.dtype();
  CHECK(lse0.dtype() == dt,
        "attention_backward: expected the forward's {} lse for {} inputs, got {}", dtype_name(dt),
        dtype_name(dt), lse0.describe());
  Tensor q = exact_layout(q0, dt), k = exact_layout(k0, dt), v = exact_layout(v0, dt);
  Tensor out = exact_layout(out0, dt), dout = exact_layout(dout0, dt), lse = lse0.contiguous();
  cuda::ExactAttentionParams p = exact_params(q, k, v, options);
  auto target = [](const Tensor& g) { return grad_target(g, g.stride(3) == 1 || g.size(3) == 1); };
  const AttentionGrads g{target(grads.dq), target(grads.dk), target(grads.dv)};
  Tensor delta = Tensor::empty({q.size(0), q.size(2), q.size(1)}, kFloat64, q.device());
  p.out = out.raw_data();
  p.out_strides = strides_of(out);
  p.lse = lse.raw_data();
  p.dout = dout.raw_data();
  p.dout_strides = strides_of(dout);
  set_grads(p, g);
  p.delta = delta.data<double>();
  cuda::exact_attention_backward(p);
  finish_grad(g.dq, grads.dq);
  finish_grad(g.dk, grads.dk);
  finish_grad(g.dv, grads.dv);
}

// ---- bf16: FlashAttention (cuda/flash_attention_*.cu) -----------------------------------------

// The kernels read and write rows of D elements with 16-byte accesses: the head dim contiguous
// and every stride and the base a multiple of 8 bf16 elements.
bool kernel_can_access(const Tensor& x) {
  bool ok = x.dtype() == kBFloat16 && x.stride(3) == 1 && x.offset() % 8 == 0;
  for (int d = 0; d < 3; ++d) ok = ok && x.stride(d) % 8 == 0;
  return ok;
}

// An input in that layout; anything else is copied to contiguous.
Tensor kernel_layout(const Tensor& t) {
  Tensor x = t.to(kBFloat16);
  return kernel_can_access(x) ? x : x.contiguous();
}

cuda::FlashAttentionParams cuda_params(const Tensor& q, const Tensor& k, const Tensor& v,
                                       const AttentionOptions& o) {
  const int64_t D = q.size(3);
  CHECK(D == 8 || D == 16 || D == 32 || D == 64 || D == 128,
        "attention: the CUDA kernel supports head dims 8, 16, 32, 64, 128, got q {}", q.describe());
  return kernel_params<cuda::FlashAttentionParams>(q, k, v, o);
}

Tensor forward_flash(const Tensor& q0, const Tensor& k0, const Tensor& v0,
                     const AttentionOptions& options, Tensor* lse_out) {
  Tensor q = kernel_layout(q0), k = kernel_layout(k0), v = kernel_layout(v0);
  cuda::FlashAttentionParams p = cuda_params(q, k, v, options);
  Tensor out = Tensor::empty(q.shape(), kBFloat16, q.device());
  Tensor lse = Tensor::empty({q.size(0), q.size(2), q.size(1)}, kFloat32, q.device());
  p.out = out.raw_data();
  p.out_strides = strides_of(out);
  p.lse = lse.data<float>();
  cuda::flash_attention_forward(p);
  if (lse_out) *lse_out = lse;
  return out;
}

// dq, dk, dv (bf16) written in place where kernel_can_access allows: the packed gradient's
// views are, so the model's backward writes one [B, T, 3, H, D] buffer and nothing else.
void backward_flash(const Tensor& q0, const Tensor& k0, const Tensor& v0, const Tensor& out0,
                    const Tensor& lse, const Tensor& dout0, const AttentionOptions& options,
                    const AttentionGrads& grads) {
  Tensor q = kernel_layout(q0), k = kernel_layout(k0), v = kernel_layout(v0);
  Tensor out = kernel_layout(out0), dout = kernel_layout(dout0);
  CHECK(lse.dtype() == kFloat32 && lse.is_contiguous(),
        "attention_backward: expected the forward's float32 lse, got {}", lse.describe());
  cuda::FlashAttentionParams p = cuda_params(q, k, v, options);
  auto target = [](const Tensor& g) { return grad_target(g, kernel_can_access(g)); };
  const AttentionGrads g{target(grads.dq), target(grads.dk), target(grads.dv)};
  Tensor delta = Tensor::empty({2, q.size(0), q.size(2), q.size(1)}, kFloat32, q.device());
  // The single pass accumulates dQ in float32 (zeroed by the backward itself). At D = 128 the
  // mma.sync single pass is slower than the two-kernel backward (zeroing and rounding the 4-byte
  // accumulator and its atomics cost more than the second pass over the scores; docs/benchmarks.md,
  // A/B runs), so there the single pass runs only where the wgmma kernel takes it.
  const bool single_pass =
      !options.deterministic &&
      (q.size(3) < 128 || (cuda::fa::kUseSm90Backward && cuda::fa::sm90_handles(p)));
  Tensor dq_accum;
  if (single_pass) dq_accum = Tensor::empty(q.shape(), kFloat32, q.device());
  p.dq_accum = single_pass ? dq_accum.data<float>() : nullptr;
  p.out = out.raw_data();
  p.out_strides = strides_of(out);
  p.lse = lse.data<float>();
  p.dout = dout.raw_data();
  p.dout_strides = strides_of(dout);
  set_grads(p, g);
  p.delta = delta.data<float>();
  cuda::flash_attention_backward(p);
  finish_grad(g.dq, grads.dq);
  finish_grad(g.dk, grads.dk);
  finish_grad(g.dv, grads.dv);
}

// CUDA inputs: float32 and float64 go to the exact kernels, computed in float64 (the "fp32"
// precision mode and the float64 checks need attention in the inputs' own precision); bf16 goes
// to FlashAttention's tensor cores.
bool exact_on_cuda(DType dtype) { return dtype == kFloat32 || dtype == kFloat64; }

Tensor forward_cuda(const Tensor& q, const Tensor& k, const Tensor& v,
                    const AttentionOptions& options, Tensor* lse) {
  return exact_on_cuda(q.dtype()) ? forward_exact(q, k, v, options, lse)
                                  : forward_flash(q, k, v, options, lse);
}

void backward_cuda(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                   const Tensor& lse, const Tensor& dout, const AttentionOptions& options,
                   const AttentionGrads& grads) {
  if (exact_on_cuda(q.dtype())) {
    backward_exact(q, k, v, out, lse, dout, options, grads);
  } else {
    backward_flash(q, k, v, out, lse, dout, options, grads);
  }
}
#endif  // MT_WITH_CUDA

}  // namespace

float attention_scale(const AttentionOptions& options, int64_t head_dim) {
  return options.scale > 0.0f ? options.scale
                              : static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
}

Tensor attention_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                         const AttentionOptions& options, Tensor* lse) {
  const Dims s = check_qkv(q, k, v, "attention_forward");
  check_options(options, q, "attention_forward");
  MT_RETURN_IF_CUDA(q.is_cuda(), forward_cuda(q, k, v, options, lse));
  const DType ct = cpu_compute_dtype(q.dtype());
  Tensor qc = q.to(ct).contiguous(), kc = k.to(ct).contiguous(), vc = v.to(ct).contiguous();
  Tensor out = Tensor::empty(q.shape(), ct);
  Tensor row_lse = Tensor::empty({s.B, s.H, s.T}, ct);
  const double scale = attention_scale(options, s.D);
  MT_DISPATCH_FLOAT(ct, "attention_forward", [&] {
    if constexpr (!std::is_same_v<scalar_t, bf16>) {
      tiled::forward<scalar_t>(qc, kc, vc, out, row_lse, s, scale, options.causal,
                               make_dropout(options));
    }
  });
  if (lse) *lse = row_lse;
  return out.to(q.dtype());
}

namespace {

Dims check_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                    const Tensor& lse, const Tensor& dout, const AttentionOptions& options,
                    const char* op) {
  const Dims s = check_qkv(q, k, v, op);
  check_options(options, q, op);
  CHECK(out.shape() == q.shape() && dout.shape() == q.shape(),
        "{}: out and dout must match q {}, got out {}, dout {}", op, q.describe(), out.describe(),
        dout.describe());
  CHECK(lse.shape() == Shape({s.B, s.H, s.T}), "{}: expected lse of shape {}, got {}", op,
        shape_str({s.B, s.H, s.T}), lse.describe());
  CHECK(out.device() == q.device() && dout.device() == q.device() && lse.device() == q.device(),
        "{}: all inputs must be on {}, got out {}, dout {}, lse {}", op, q.device().str(),
        out.describe(), dout.describe(), lse.describe());
  return s;
}

// The tiled CPU backward: contiguous gradients in the compute dtype (float32 for bf16 inputs).
AttentionGrads backward_cpu(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                            const Tensor& lse, const Tensor& dout, const AttentionOptions& options,
                            const Dims& s) {
  const DType ct = cpu_compute_dtype(q.dtype());
  auto prep = [&](const Tensor& t) { return t.to(ct).contiguous(); };
  const double scale = attention_scale(options, s.D);
  return MT_DISPATCH_FLOAT(ct, "attention_backward", [&] {
    if constexpr (!std::is_same_v<scalar_t, bf16>) {
      return tiled::backward<scalar_t>(prep(q), prep(k), prep(v), prep(out), prep(lse), prep(dout),
                                       s, scale, options.causal, make_dropout(options));
    }
    return AttentionGrads{};
  });
}

#ifdef MT_WITH_CUDA
AttentionGrads backward_cuda_contiguous(const Tensor& q, const Tensor& k, const Tensor& v,
                                        const Tensor& out, const Tensor& lse, const Tensor& dout,
                                        const AttentionOptions& options) {
  AttentionGrads g{Tensor::empty(q.shape(), q.dtype(), q.device()),
                   Tensor::empty(q.shape(), q.dtype(), q.device()),
                   Tensor::empty(q.shape(), q.dtype(), q.device())};
  backward_cuda(q, k, v, out, lse, dout, options, g);
  return g;
}
#endif  // MT_WITH_CUDA

}  // namespace

AttentionGrads attention_backward(const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& out, const Tensor& lse, const Tensor& dout,
                                  const AttentionOptions& options) {
  const Dims s = check_backward(q, k, v, out, lse, dout, options, "attention_backward");
  MT_RETURN_IF_CUDA(q.is_cuda(), backward_cuda_contiguous(q, k, v, out, lse, dout, options));
  const AttentionGrads g = backward_cpu(q, k, v, out, lse, dout, options, s);
  return {g.dq.to(q.dtype()), g.dk.to(q.dtype()), g.dv.to(q.dtype())};
}

void attention_backward_into(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                             const Tensor& lse, const Tensor& dout, const AttentionOptions& options,
                             const AttentionGrads& grads) {
  const Dims s = check_backward(q, k, v, out, lse, dout, options, "attention_backward_into");
  for (const Tensor* g : {&grads.dq, &grads.dk, &grads.dv}) {
    CHECK(g->defined() && g->shape() == q.shape() && g->dtype() == q.dtype() &&
              g->device() == q.device(),
          "attention_backward_into: expected dq, dk, dv like q {}, got {}", q.describe(),
          g->defined() ? g->describe() : std::string("an undefined tensor"));
  }
  MT_RETURN_IF_CUDA(q.is_cuda(), backward_cuda(q, k, v, out, lse, dout, options, grads));
  const AttentionGrads g = backward_cpu(q, k, v, out, lse, dout, options, s);
  Tensor dq = grads.dq, dk = grads.dk, dv = grads.dv;
  dq.copy_(g.dq);
  dk.copy_(g.dk);
  dv.copy_(g.dv);
}

}  // namespace mt::ops
