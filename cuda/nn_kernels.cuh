// Kernels for the neural-network ops of ops/: softmax, GELU, dropout, RMSNorm, rotary embedding
// and the regression losses, forward and backward. Inputs are dense (row-major) unless a stride
// argument says otherwise; ops/ calls contiguous() first. Floating element types only; bf16
// computes in float32, float64 in float64.
#pragma once

#include <cstdint>

#include "cuda/tensor_kernels.cuh"

namespace mt::cuda {

// ---- softmax over the last dim of dense [rows, K] -----------------------------------------
// y = softmax(x) (or log_softmax when `log`).
void softmax_forward(ElemType type, void* y, const void* x, int64_t rows, int64_t K, bool log);
// dx = y (dy - sum(dy y))  or, for log_softmax, dx = dy - exp(y) sum(dy).
void softmax_backward(ElemType type, void* dx, const void* dy, const void* y, int64_t rows,
                      int64_t K, bool log);

// ---- GELU over n dense elements (tanh_approx picks the tanh form, else erf) ---------------
void gelu_forward(ElemType type, void* y, const void* x, int64_t n, bool tanh_approx);
void gelu_backward(ElemType type, void* dx, const void* dy, const void* x, int64_t n,
                   bool tanh_approx);

// ---- dropout: y[i] = philox_uniform_at(seed, stream, i) >= p ? x[i] / (1 - p) : 0 ---------
// The backward is the same call on dy. mask_f32 (optional overload) writes the 0/1 mask.
void dropout(ElemType type, void* y, const void* x, int64_t n, float p, uint64_t seed,
             uint64_t stream);
void dropout_mask(float* mask, int64_t n, float p, uint64_t seed, uint64_t stream);

// ---- RMSNorm over the last dim of dense x [N, C], weight w [C] ----------------------------
// rstd [N] is float64 when x is float64, else float32. w may have its own floating type.
void rmsnorm_forward(ElemType x_type, ElemType w_type, void* y, void* rstd, const void* x,
                     const void* w, int64_t N, int64_t C, float eps);
// dx (x's type) and dw (w's type) may each be null. dw is reduced deterministically: fixed
// row chunks, then a fixed-order sum of the chunk partials.
void rmsnorm_backward(ElemType x_type, ElemType w_type, void* dx, void* dw, const void* dy,
                      const void* x, const void* w, const void* rstd, int64_t N, int64_t C);

// ---- rotary embedding on x [B, T, H, D] with any strides; y dense -------------------------
// Rotates channel pairs (c, c + R/2), c < R/2, by theta = (t + position_offset) *
// base^(-2c / R); channels >= R are copied. `inverse` rotates by -theta (the backward).
void rotary(ElemType type, void* y, const void* x, const int64_t* x_strides /*4*/, int64_t B,
            int64_t T, int64_t H, int64_t D, int64_t R, double base, int64_t position_offset,
            bool inverse);

// ---- losses over dense pred, target [N, F] ------------------------------------------------
// weight: [F] float64 or null (all ones). beta < 0 selects MSE, else weighted smooth L1:
//   smooth L1: loss = (1/N) sum_n sum_f w[f] l(pred - target);  MSE: mean((pred - target)^2).
// loss: one element, float64 for float64 inputs, else float32. Sums in float64, reduced in a
// fixed order (per-block partials, then one block adds them): the same bits every run.
void loss_forward(ElemType type, void* loss, const void* pred, const void* target,
                  const double* weight, int64_t N, int64_t F, float beta);
// dpred = dloss * dl/dpred; dloss is one float64 element on the device (no host read).
void loss_backward(ElemType type, void* dpred, const double* dloss, const void* pred,
                   const void* target, const double* weight, int64_t N, int64_t F, float beta);

}  // namespace mt::cuda
