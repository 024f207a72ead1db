// Differentiable neural-net ops: softmax, log-softmax, GELU, the GELU MLP, RMSNorm, LayerNorm,
// rotary embedding, dropout and the regression losses. Each pairs a forward from ops/ with its
// backward; what the backward keeps alive is named on each function ("saves").
#pragma once

#include <cstdint>
#include <utility>

#include "autograd/var.h"
#include "ops/activation.h"
#include "ops/rotary.h"
#include "tensor/random.h"

namespace mt {

// softmax along dim. Saves: the output y.
Var softmax(const Var& x, int dim);
// log_softmax along dim. Saves: the output y.
Var log_softmax(const Var& x, int dim);

// GELU (tanh approximation by default, or the exact erf form). Saves: the input x.
Var gelu(const Var& x, ops::GeluApprox approx = ops::GeluApprox::kTanh);
// F.gelu(x, approximate="tanh"), the model's MLP activation.
inline Var gelu_tanh(const Var& x) { return gelu(x, ops::GeluApprox::kTanh); }

// The GELU MLP, y = gelu_tanh(x . w1^T + b1) . w2^T + b2 over the last dim: x [..., C],
// w1 [F, C], b1 [F], w2 [C2, F], b2 [C2] -> y [..., C2]. One node whose forward is
// ops::linear_gelu_forward then ops::linear, and whose backward forms the hidden layer's
// gradient in the same GEMM as the GELU's derivative (ops/linear_gelu.h). Saves: x, w1, w2, the
// GELU's input pre [N, F] and its output h [N, F] (dw2 = dy^T . h).
Var gelu_mlp(const Var& x, const Var& w1, const Var& b1, const Var& w2, const Var& b2);

// RMSNorm over the last dim: x [..., C], w [C]. Saves: x, w and rstd [N].
Var rmsnorm(const Var& x, const Var& w, float eps);
// The pre-norm block's residual add and the RMSNorm after it: {h = x + r, rmsnorm(h, w)}, the
// forward fused (ops::add_rmsnorm_forward, one pass). Recorded as the two ops it fuses, an add
// Node making h and an rmsnorm Node on h: the engine records one Node per output Var and sums the
// gradient h receives from its consumers (this norm and the next residual add) itself, so the
// backward is the unfused one (rmsnorm's dx, then that sum, then dx = dr = dh). x and r have one
// shape and dtype. Saves: h, w and rstd [N] (the norm's; the add saves nothing).
std::pair<Var, Var> add_rmsnorm(const Var& x, const Var& r, const Var& w, float eps);
// LayerNorm over the last dim: x [..., C], w [C], b [C]. Saves: x, w, mean [N] and rstd [N].
Var layernorm(const Var& x, const Var& w, const Var& b, float eps);

// Rotary embedding of x [B, T, H, D] (see ops/rotary.h). Saves: only the options.
Var rotary(const Var& x, const ops::RotaryOptions& options = {});

// Inverted dropout with the mask of draw (seed, stream). Saves: (p, seed, stream).
Var dropout(const Var& x, float p, uint64_t seed, uint64_t stream);
// Training-mode dropout drawing (gen.seed(), gen.next_stream()); returns x itself when not
// training or p == 0 (and then consumes no stream).
Var dropout(const Var& x, float p, bool training, Generator& gen = default_generator());

// (smooth_l1(pred - target; beta) * weight).sum(-1).mean() as a 0-dim Var; weight [F] or
// undefined (all ones) and never differentiated. Saves: pred, target, weight.
Var smooth_l1_loss(const Var& pred, const Var& target, float beta, const Tensor& weight = Tensor());
// mean((pred - target)^2) as a 0-dim Var. Saves: pred, target.
Var mse_loss(const Var& pred, const Var& target);

}  // namespace mt
