// Tensor-level glue from ops/ to the cuda/ launchers (see cuda_ops.h).
#include "ops/cuda_ops.h"

#ifdef MT_WITH_CUDA

#include <algorithm>
#include <cmath>

#include "cuda/elementwise.cuh"
#include "cuda/gemm.cuh"
#include "cuda/grad_norm.cuh"
#include "cuda/nn_kernels.cuh"
#include "cuda/reduce.cuh"
#include "cuda/runtime.h"

namespace mt::ops::cuda_ops {

namespace {

static_assert(int(cuda::ElemType::F32) == int(DType::Float32) &&
                  int(cuda::ElemType::BF16) == int(DType::BFloat16) &&
                  int(cuda::ElemType::F64) == int(DType::Float64) &&
                  int(cuda::ElemType::I32) == int(DType::Int32) &&
                  int(cuda::ElemType::I64) == int(DType::Int64),
              "cuda::ElemType mirrors mt::DType");
static_assert(int(BinaryOp::Ge) == int(cuda::BinaryKind::Ge) &&
                  int(UnaryOp::Sign) == int(cuda::UnaryKind::Sign),
              "cuda::BinaryKind/UnaryKind mirror ops::BinaryOp/UnaryOp");

cuda::ElemType et(DType d) { return static_cast<cuda::ElemType>(d); }
cuda::ElemType et(const Tensor& t) { return et(t.dtype()); }

Tensor empty_like_on(const Shape& shape, DType dtype, const Tensor& like) {
  return Tensor::empty(shape, dtype, like.device());
}

}  // namespace

Tensor binary(const Tensor& a, const Tensor& b, BinaryOp op, Tensor& out) {
  const Tensor ae = a.expand(out.shape()), be = b.expand(out.shape());
  cuda::binary(static_cast<cuda::BinaryKind>(op), et(out), out.raw_data(), out.shape().data(),
               out.dim(), ae.raw_data(), ae.strides().data(), be.raw_data(), be.strides().data());
  return out;
}

Tensor unary(const Tensor& x, UnaryOp op, double p0, double p1, Tensor& out) {
  cuda::unary(static_cast<cuda::UnaryKind>(op), et(out), out.raw_data(), out.shape().data(),
              out.dim(), x.raw_data(), x.strides().data(), p0, p1);
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  const Tensor ce = cond.expand(out.shape()), ae = a.expand(out.shape()),
               be = b.expand(out.shape());
  cuda::where(et(out), out.raw_data(), out.shape().data(), out.dim(), ce.raw_data(),
              ce.strides().data(), ae.raw_data(), ae.strides().data(), be.raw_data(),
              be.strides().data());
  return out;
}

namespace {

// x viewed as dense [outer, K, inner] with the reduced dims in the middle: free when x is
// contiguous and the reduced dims are adjacent, else kept dims are permuted first and copied.
struct ReduceView {
  Tensor data;
  int64_t outer = 1, K = 1, inner = 1;
  Shape out_shape;
};

ReduceView reduce_view(const Tensor& x, const std::vector<int>& reduced, bool keepdim) {
  ReduceView v;
  std::vector<bool> is_red(x.dim(), false);
  for (int d : reduced) is_red[d] = true;
  for (int d = 0; d < x.dim(); ++d) {
    if (!is_red[d] || keepdim) v.out_shape.push_back(is_red[d] ? 1 : x.size(d));
  }
  const bool adjacent =
      reduced.empty() || reduced.back() - reduced.front() + 1 == int(reduced.size());
  if (x.is_contiguous() && adjacent) {
    v.data = x;
    for (int d = 0; d < x.dim(); ++d) {
      if (is_red[d])
        v.K *= x.size(d);
      else if (!reduced.empty() && d > reduced.back())
        v.inner *= x.size(d);
      else
        v.outer *= x.size(d);
    }
    return v;
  }
  std::vector<int> order;
  for (int d = 0; d < x.dim(); ++d) {
    if (!is_red[d]) {
      order.push_back(d);
      v.outer *= x.size(d);
    }
  }
  for (int d : reduced) {
    order.push_back(d);
    v.K *= x.size(d);
  }
  v.data = x.permute(order).contiguous();
  return v;
}

}  // namespace

Tensor reduce(const Tensor& x, const std::vector<int>& reduced, bool keepdim, Reduction what,
              bool unbiased) {
  ReduceView v = reduce_view(x, reduced, keepdim);
  Tensor out = empty_like_on(v.out_shape, x.dtype(), x);
  if (v.K == 0) {  // as the CPU: an empty sum is 0, an empty mean or variance NaN
    return out.fill_(what == Reduction::Sum ? 0.0 : std::nan(""));
  }
  cuda::ReduceKind kind = cuda::ReduceKind::Sum;
  double scale = 1.0;
  if (what == Reduction::Mean) scale = 1.0 / double(v.K);
  if (what == Reduction::Max) kind = cuda::ReduceKind::Max;
  if (what == Reduction::Var) {
    kind = cuda::ReduceKind::Var;
    scale = 1.0 / (double(v.K) - (unbiased ? 1.0 : 0.0));  // K = 1, unbiased: inf * 0 = NaN
  }
  cuda::reduce(kind, et(x), out.raw_data(), v.data.raw_data(), v.outer, v.K, v.inner, scale);
  return out;
}

Tensor argmax(const Tensor& x, int dim, bool keepdim) {
  ReduceView v = reduce_view(x, {dim}, keepdim);
  Tensor out = empty_like_on(v.out_shape, kInt64, x);
  cuda::argmax(et(x), out.data<int64_t>(), v.data.raw_data(), v.outer, v.K, v.inner);
  return out;
}

Tensor global_l2_norm(const std::vector<Tensor>& tensors) {
  std::vector<Tensor> keep;
  std::vector<cuda::NormTensor> list;
  for (const Tensor& t : tensors) {
    keep.push_back(t.dtype() == kFloat32 ? t.contiguous() : t.to(kFloat32).contiguous());
    list.push_back({keep.back().data<float>(), keep.back().numel()});
  }
  Device device = tensors.empty() ? Device::cuda() : tensors[0].device();
  Tensor norm = Tensor::empty({}, kFloat32, device);
  cuda::global_l2_norm(list.data(), int(list.size()), norm.data<float>());
  return norm;
}

Tensor softmax(const Tensor& x, int dim, bool log) {
  const bool last = dim == x.dim() - 1;
  const Tensor xt = last ? x.contiguous() : x.transpose(dim, -1).contiguous();
  Tensor yt = empty_like_on(xt.shape(), x.dtype(), x);
  const int64_t K = x.size(dim), rows = K == 0 ? 0 : x.numel() / K;
  cuda::softmax_forward(et(x), yt.raw_data(), xt.raw_data(), rows, K, log);
  return last ? yt : yt.transpose(dim, -1).contiguous();
}

Tensor softmax_backward(const Tensor& dy, const Tensor& y, int dim, bool log) {
  const bool last = dim == y.dim() - 1;
  const Tensor dyt = last ? dy.contiguous() : dy.transpose(dim, -1).contiguous();
  const Tensor yt = last ? y.contiguous() : y.transpose(dim, -1).contiguous();
  Tensor dxt = empty_like_on(yt.shape(), y.dtype(), y);
  const int64_t K = y.size(dim), rows = K == 0 ? 0 : y.numel() / K;
  cuda::softmax_backward(et(y), dxt.raw_data(), dyt.raw_data(), yt.raw_data(), rows, K, log);
  return last ? dxt : dxt.transpose(dim, -1).contiguous();
}

Tensor gelu(const Tensor& x_in, bool tanh_approx) {
  const Tensor x = x_in.contiguous();
  Tensor y = empty_like_on(x.shape(), x.dtype(), x);
  cuda::gelu_forward(et(x), y.raw_data(), x.raw_data(), x.numel(), tanh_approx);
  return y;
}

Tensor gelu_backward(const Tensor& dy_in, const Tensor& x_in, bool tanh_approx) {
  const Tensor x = x_in.contiguous(), dy = dy_in.contiguous();
  Tensor dx = empty_like_on(x.shape(), x.dtype(), x);
  cuda::gelu_backward(et(x), dx.raw_data(), dy.raw_data(), x.raw_data(), x.numel(), tanh_approx);
  return dx;
}

Tensor dropout(const Tensor& x_in, float p, uint64_t seed, uint64_t stream) {
  const Tensor x = x_in.contiguous();
  Tensor y = empty_like_on(x.shape(), x.dtype(), x);
  cuda::dropout(et(x), y.raw_data(), x.raw_data(), x.numel(), p, seed, stream);
  return y;
}

Tensor rmsnorm_forward(const Tensor& x_in, const Tensor& w_in, float eps, Tensor* rstd_out) {
  const Tensor x = x_in.contiguous(), w = w_in.contiguous();
  const int64_t C = x.size(-1), N = C == 0 ? 0 : x.numel() / C;
  Tensor y = empty_like_on(x.shape(), x.dtype(), x);
  Tensor rstd = empty_like_on({N}, x.dtype() == kFloat64 ? kFloat64 : kFloat32, x);
  cuda::rmsnorm_forward(et(x), et(w), y.raw_data(), rstd.raw_data(), x.raw_data(), w.raw_data(), N,
                        C, eps);
  if (rstd_out) *rstd_out = rstd;
  return y;
}

void rmsnorm_backward(const Tensor& dy_in, const Tensor& x_in, const Tensor& w_in,
                      const Tensor& rstd_in, Tensor* dx, Tensor* dw) {
  const Tensor dy = dy_in.contiguous(), x = x_in.contiguous(), w = w_in.contiguous(),
               rstd = rstd_in.contiguous();
  const int64_t C = x.size(-1), N = C == 0 ? 0 : x.numel() / C;
  if (dx) *dx = empty_like_on(x.shape(), x.dtype(), x);
  if (dw) *dw = empty_like_on(w.shape(), w.dtype(), w);
  cuda::rmsnorm_backward(et(x), et(w), dx ? dx->raw_data() : nullptr, dw ? dw->raw_data() : nullptr,
                         dy.raw_data(), x.raw_data(), w.raw_data(), rstd.raw_data(), N, C);
}

Tensor rotary(const Tensor& x, int64_t rotary_dim, double base, int64_t position_offset,
              bool inverse) {
  Tensor y = empty_like_on(x.shape(), x.dtype(), x);
  const int64_t D = x.size(3), R = rotary_dim < 0 ? D : rotary_dim;
  cuda::rotary(et(x), y.raw_data(), x.raw_data(), x.strides().data(), x.size(0), x.size(1),
               x.size(2), D, R, base, position_offset, inverse);
  return y;
}

namespace {
Tensor weight_f64(const Tensor& weight) {
  return weight.defined() ? weight.to(kFloat64).contiguous() : Tensor();
}
}  // namespace

Tensor loss_forward(const Tensor& pred_in, const Tensor& target_in, const Tensor& weight,
                    float beta) {
  const Tensor pred = pred_in.contiguous(), target = target_in.contiguous();
  const Tensor w = weight_f64(weight);
  const int64_t F = beta < 0 || pred.dim() == 0 ? 1 : pred.size(-1);
  const int64_t N = pred.numel() / F;
  Tensor loss = empty_like_on({}, pred.dtype() == kFloat64 ? kFloat64 : kFloat32, pred);
  cuda::loss_forward(et(pred), loss.raw_data(), pred.raw_data(), target.raw_data(),
                     w.defined() ? w.data<double>() : nullptr, N, F, beta);
  return loss;
}

Tensor loss_backward(const Tensor& dloss, const Tensor& pred_in, const Tensor& target_in,
                     const Tensor& weight, float beta) {
  CHECK(dloss.numel() == 1, "loss backward: expected a one-element dloss, got {}",
        dloss.describe());
  const Tensor pred = pred_in.contiguous(), target = target_in.contiguous();
  const Tensor w = weight_f64(weight);
  // dloss stays on the device: a float64 copy of it, no item() and no host sync.
  const Tensor g = dloss.to(pred.device()).to(kFloat64).contiguous();
  const int64_t F = beta < 0 || pred.dim() == 0 ? 1 : pred.size(-1);
  const int64_t N = pred.numel() / F;
  Tensor dpred = empty_like_on(pred.shape(), pred.dtype(), pred);
  cuda::loss_backward(et(pred), dpred.raw_data(), g.data<double>(), pred.raw_data(),
                      target.raw_data(), w.defined() ? w.data<double>() : nullptr, N, F, beta);
  return dpred;
}

namespace {

// t [batch..., R, C] as a cuBLASLt operand, if its layout allows: unit stride along one of the
// two matrix dims (row-major or transposed) and batch dims that collapse to one stride.
bool gemm_layout(const Tensor& t, cuda::GemmOperand& op) {
  const int r = t.dim();
  const int64_t R = t.size(r - 2), C = t.size(r - 1), s0 = t.stride(r - 2), s1 = t.stride(r - 1);
  if ((s1 == 1 || C == 1) && (R == 1 || s0 >= std::max<int64_t>(C, 1))) {
    op.transpose = false;
    op.ld = R == 1 ? std::max<int64_t>(C, 1) : s0;
  } else if ((s0 == 1 || R == 1) && (C == 1 || s1 >= std::max<int64_t>(R, 1))) {
    op.transpose = true;
    op.ld = C == 1 ? std::max<int64_t>(R, 1) : s1;
  } else {
    return false;
  }
  bool first = true;
  int64_t expected = 0;
  op.batch_stride = 0;
  for (int d = r - 3; d >= 0; --d) {
    if (t.size(d) == 1) continue;
    if (first) {
      op.batch_stride = t.stride(d);
      first = false;
    } else if (t.stride(d) != expected) {
      return false;
    }
    expected = t.stride(d) * t.size(d);
  }
  op.data = t.raw_data();
  return true;
}

// The operand for t, copying it to a dense layout when its strides do not fit (kept alive in
// `keep`).
cuda::GemmOperand gemm_operand(const Tensor& t, Tensor& keep) {
  cuda::GemmOperand op{};
  keep = t;
  if (!gemm_layout(keep, op)) {
    keep = t.contiguous();
    CHECK(gemm_layout(keep, op), "matmul (cuda): cannot lay out {}", t.describe());
  }
  return op;
}

}  // namespace

void matmul(const Tensor& a, const Tensor& b, Tensor& out) {
  const int r = out.dim();
  const int64_t M = out.size(r - 2), N = out.size(r - 1), K = a.size(r - 1);
  if (out.numel() == 0) return;
  if (K == 0) {
    out.zero_();
    return;
  }
  const int64_t batch = out.numel() / (M * N);
  Tensor ka, kb;
  const cuda::GemmOperand oa = gemm_operand(a, ka), ob = gemm_operand(b, kb);
  cuda::gemm(et(a), et(out), M, N, K, batch, oa, ob, out.raw_data(), N, M * N, 1.0f, false,
             nullptr);
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  const int64_t in = w.size(1), out_f = w.size(0);
  const Tensor x2 = x.reshape({-1, in});
  const int64_t rows = x2.size(0);
  Tensor y = empty_like_on({rows, out_f}, x.dtype(), x);
  Shape out_shape = x.shape();
  out_shape.back() = out_f;
  if (y.numel() == 0) return y.reshape(out_shape);
  const Tensor b = bias.defined() ? bias.to(x.dtype()).contiguous() : Tensor();
  if (in == 0) {
    y.zero_();
    return (b.defined() ? ops::add(y, b) : y).reshape(out_shape);
  }
  Tensor ka, kb;
  const cuda::GemmOperand oa = gemm_operand(x2, ka), ob = gemm_operand(w.transpose(0, 1), kb);
  cuda::gemm(et(x), et(x), rows, out_f, in, 1, oa, ob, y.raw_data(), out_f, 0, 1.0f, false,
             b.defined() ? b.raw_data() : nullptr);
  return y.reshape(out_shape);
}

}  // namespace mt::ops::cuda_ops

#else  // no CUDA: nothing can be on a GPU, so none of this is reachable

#include "base/error.h"

namespace mt::ops::cuda_ops {

namespace {
[[noreturn]] void no_cuda(const char* op) { FAIL("{}: this build has no CUDA support", op); }
}  // namespace

Tensor binary(const Tensor&, const Tensor&, BinaryOp, Tensor&) { no_cuda("binary"); }
Tensor unary(const Tensor&, UnaryOp, double, double, Tensor&) { no_cuda("unary"); }
Tensor where(const Tensor&, const Tensor&, const Tensor&, Tensor&) { no_cuda("where"); }
Tensor reduce(const Tensor&, const std::vector<int>&, bool, Reduction, bool) { no_cuda("reduce"); }
Tensor argmax(const Tensor&, int, bool) { no_cuda("argmax"); }
Tensor global_l2_norm(const std::vector<Tensor>&) { no_cuda("global_l2_norm"); }
Tensor softmax(const Tensor&, int, bool) { no_cuda("softmax"); }
Tensor softmax_backward(const Tensor&, const Tensor&, int, bool) { no_cuda("softmax_backward"); }
Tensor gelu(const Tensor&, bool) { no_cuda("gelu"); }
Tensor gelu_backward(const Tensor&, const Tensor&, bool) { no_cuda("gelu_backward"); }
Tensor dropout(const Tensor&, float, uint64_t, uint64_t) { no_cuda("dropout"); }
Tensor rmsnorm_forward(const Tensor&, const Tensor&, float, Tensor*) { no_cuda("rmsnorm"); }
void rmsnorm_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, Tensor*,
                      Tensor*) {
  no_cuda("rmsnorm_backward");
}
Tensor rotary(const Tensor&, int64_t, double, int64_t, bool) { no_cuda("rotary"); }
Tensor loss_forward(const Tensor&, const Tensor&, const Tensor&, float) { no_cuda("loss"); }
Tensor loss_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, float) {
  no_cuda("loss_backward");
}
void matmul(const Tensor&, const Tensor&, Tensor&) { no_cuda("matmul"); }
Tensor linear(const Tensor&, const Tensor&, const Tensor&) { no_cuda("linear"); }

}  // namespace mt::ops::cuda_ops

#endif  // MT_WITH_CUDA
