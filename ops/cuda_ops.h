// The GPU side of ops/: tensor-level wrappers that take already-validated CUDA tensors, lay
// them out for a cuda/ launcher (contiguous, dims permuted, dtypes mapped) and launch it.
//
// Each CPU op file has one spot "if (x.is_cuda()) return cuda_ops::<op>(...)"; all CUDA glue
// lives here, so the op files stay free of #ifdefs. In a build without CUDA every function
// here is an Error (it is never reached there: no tensor can be on a GPU).
#pragma once

#include <cstdint>
#include <vector>

#include "ops/elementwise.h"
#include "tensor/tensor.h"

namespace mt::ops::cuda_ops {

// Elementwise: `out` is the dense result tensor the op allocated.
Tensor binary(const Tensor& a, const Tensor& b, BinaryOp op, Tensor& out);
Tensor unary(const Tensor& x, UnaryOp op, double p0, double p1, Tensor& out);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out);

// Reductions over normalized (sorted, unique) dims.
enum class Reduction { Sum, Mean, Max, Var };
Tensor reduce(const Tensor& x, const std::vector<int>& reduced, bool keepdim, Reduction what,
              bool unbiased = true);
Tensor argmax(const Tensor& x, int dim, bool keepdim);
Tensor global_l2_norm(const std::vector<Tensor>& tensors);  // 0-dim float32 on the GPU

Tensor softmax(const Tensor& x, int dim, bool log);
Tensor softmax_backward(const Tensor& dy, const Tensor& y, int dim, bool log);
Tensor gelu(const Tensor& x, bool tanh_approx);
Tensor gelu_backward(const Tensor& dy, const Tensor& x, bool tanh_approx);
Tensor dropout(const Tensor& x, float p, uint64_t seed, uint64_t stream);
Tensor rmsnorm_forward(const Tensor& x, const Tensor& w, float eps, Tensor* rstd);
void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd,
                      Tensor* dx, Tensor* dw);
Tensor rotary(const Tensor& x, int64_t rotary_dim, double base, int64_t position_offset,
              bool inverse);
// beta < 0 selects MSE; weight [F] or undefined.
Tensor loss_forward(const Tensor& pred, const Tensor& target, const Tensor& weight, float beta);
Tensor loss_backward(const Tensor& dloss, const Tensor& pred, const Tensor& target,
                     const Tensor& weight, float beta);

// a, b already expanded to [batch..., M, K] and [batch..., K, N]; out dense [batch..., M, N].
void matmul(const Tensor& a, const Tensor& b, Tensor& out);
// x [..., in] . w [out, in]^T + bias.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias);

}  // namespace mt::ops::cuda_ops
