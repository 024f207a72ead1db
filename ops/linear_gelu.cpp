// linear_gelu_forward and linear_gelu_backward (see linear_gelu.h): the checks, the unfused
// reference and the CUDA glue that tries the fused forward GEMM first.
#include "ops/linear_gelu.h"

#include <utility>

#include "cuda/linear_gelu.cuh"
#include "ops/activation.h"
#include "ops/cuda_dispatch.h"
#include "ops/matmul.h"
#include "ops/reduce.h"

namespace mt::ops {
namespace {

// The reference, on the CPU and on the GPU where the fused GEMM does not run: linear then gelu,
// the model's calls before the fusion.
Tensor linear_gelu_forward_unfused(const Tensor& x, const Tensor& w, const Tensor& b,
                                   Tensor* pre_out) {
  Tensor pre = linear(x, w, b);
  Tensor h = gelu(pre, GeluApprox::kTanh);
  if (pre_out != nullptr) *pre_out = pre;
  return h;
}

// Backward, derived from the forward it inverts:
//   y = h . v^T + c   =>  dh = dy . v
//   h = gelu(pre)     =>  dpre = dh * gelu'(pre)
//   pre = x . w^T + b =>  dx = dpre . w,  dw = dpre^T . x,  db = sum over rows of dpre
// The same ops, in the same order, as the unfused model's backward (linear, gelu, linear). The
// GELU's derivative is applied in place (dh becomes dpre) and pre is dropped right after: the
// MLP's backward peaks at two [N, M] tensors (pre and dh) instead of three.
void linear_gelu_backward_unfused(const Tensor& dy, const Tensor& v, const Tensor& x,
                                  const Tensor& w, Tensor pre, Tensor* dx, Tensor* dw,
                                  Tensor* db) {
  Tensor dpre = matmul(dy, v);
  gelu_backward_(dpre, pre, GeluApprox::kTanh);
  pre = Tensor();
  if (dx != nullptr) *dx = matmul(dpre, w);
  if (dw != nullptr) {
    *dw = linear_weight_grad(dpre, x, db);
  } else if (db != nullptr) {
    *db = sum(dpre, {0});
  }
}

#ifdef MT_WITH_CUDA
Tensor linear_gelu_forward_cuda(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in,
                                Tensor* pre_out) {
  const Tensor x = x_in.contiguous(), w = w_in.contiguous(), b = b_in.contiguous();
  const int64_t N = x.size(0), K = x.size(1), M = w.size(0);
  Tensor h = Tensor::empty({N, M}, x.dtype(), x.device());
  Tensor pre = pre_out != nullptr ? Tensor::empty({N, M}, x.dtype(), x.device()) : Tensor();
  if (cuda::launch_linear_gelu_forward(to_elem_type(x.dtype()), h.raw_data(),
                                       pre.defined() ? pre.raw_data() : nullptr, x.raw_data(),
                                       w.raw_data(), b.raw_data(), N, M, K)) {
    if (pre_out != nullptr) *pre_out = pre;
    return h;
  }
  return linear_gelu_forward_unfused(x_in, w_in, b_in, pre_out);
}
#endif  // MT_WITH_CUDA

// Every tensor floating, of x's dtype and on x's device; the messages name what came.
void check_like(const Tensor& x, const Tensor& t, const char* op, const char* name) {
  CHECK(t.defined(), "{}: {} is undefined", op, name);
  CHECK(t.dtype() == x.dtype() && t.device() == x.device(),
        "{}: expected {} of x's dtype and device ({}), got {}", op, name, x.describe(),
        t.describe());
}

}  // namespace

Tensor linear_gelu_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor* pre) {
  constexpr const char* op = "linear_gelu_forward";
  CHECK(x.defined() && is_floating(x.dtype()), "{}: expected a floating x, got {}", op,
        x.defined() ? x.describe() : "undefined");
  check_like(x, w, op, "w");
  check_like(x, b, op, "b");
  CHECK(x.dim() == 2 && w.dim() == 2 && b.dim() == 1 && w.size(1) == x.size(1) &&
            b.size(0) == w.size(0),
        "{}: expected x [N, K], w [M, K], b [M], got x {}, w {}, b {}", op, shape_str(x.shape()),
        shape_str(w.shape()), shape_str(b.shape()));
  MT_RETURN_IF_CUDA(x.is_cuda(), linear_gelu_forward_cuda(x, w, b, pre));
  return linear_gelu_forward_unfused(x, w, b, pre);
}

void linear_gelu_backward(const Tensor& dy, const Tensor& v, const Tensor& x, const Tensor& w,
                          Tensor pre, Tensor* dx, Tensor* dw, Tensor* db) {
  constexpr const char* op = "linear_gelu_backward";
  CHECK(x.defined() && is_floating(x.dtype()), "{}: expected a floating x, got {}", op,
        x.defined() ? x.describe() : "undefined");
  check_like(x, dy, op, "dy");
  check_like(x, v, op, "v");
  check_like(x, w, op, "w");
  check_like(x, pre, op, "pre");
  CHECK(dy.dim() == 2 && v.dim() == 2 && x.dim() == 2 && w.dim() == 2 && pre.dim() == 2 &&
            w.size(1) == x.size(1) && pre.size(0) == x.size(0) && pre.size(1) == w.size(0) &&
            dy.size(0) == x.size(0) && v.size(0) == dy.size(1) && v.size(1) == w.size(0),
        "{}: expected dy [N, P], v [P, M], x [N, K], w [M, K], pre [N, M], got dy {}, v {}, x "
        "{}, w {}, pre {}",
        op, shape_str(dy.shape()), shape_str(v.shape()), shape_str(x.shape()), shape_str(w.shape()),
        shape_str(pre.shape()));
  // On every device: on the GPU each step is a cuBLASLt GEMM or one of our kernels (the GELU's
  // backward, the column sum), faster there than cuBLASLt's DGELU_BGRAD epilogue (cuda/matmul.cuh).
  linear_gelu_backward_unfused(dy, v, x, w, std::move(pre), dx, dw, db);
}

}  // namespace mt::ops
