#include "autograd/functions_nn.h"

#include <utility>

#include "autograd/recompute.h"
#include "cuda/nvtx.h"
#include "ops/dropout.h"
#include "ops/layernorm.h"
#include "ops/linear_gelu.h"
#include "ops/loss.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "ops/rmsnorm.h"
#include "ops/softmax.h"

namespace mt {

Var softmax(const Var& x, int dim) {
  cuda::NvtxRange range("softmax");
  Tensor y = ops::softmax(x.value(), dim);
  return make_result(y, {x}, "softmax", [y, dim](const Tensor& dy) {
    // y = softmax(x)  =>  dx = y * (dy - sum(dy * y))
    return std::vector<Tensor>{ops::softmax_backward(dy, y, dim)};
  });
}

Var log_softmax(const Var& x, int dim) {
  cuda::NvtxRange range("log_softmax");
  Tensor y = ops::log_softmax(x.value(), dim);
  return make_result(y, {x}, "log_softmax", [y, dim](const Tensor& dy) {
    // y = x - logsumexp(x)  =>  dx = dy - exp(y) * sum(dy)
    return std::vector<Tensor>{ops::log_softmax_backward(dy, y, dim)};
  });
}

Var gelu(const Var& x, ops::GeluApprox approx) {
  cuda::NvtxRange range("gelu");
  return make_result(ops::gelu(x.value(), approx), {x}, "gelu",
                     [x_saved = save(x), approx](const Tensor& dy) {
                       // y = gelu(x)  =>  dx = dy * gelu'(x)
                       return std::vector<Tensor>{ops::gelu_backward(dy, x_saved.get(), approx)};
                     });
}

Var gelu_mlp(const Var& x, const Var& w1, const Var& b1, const Var& w2, const Var& b2) {
  cuda::NvtxRange range("gelu_mlp");
  CHECK(x.defined() && w1.defined() && b1.defined() && w2.defined() && b2.defined(),
        "gelu_mlp: x, w1, b1, w2 and b2 must all be defined");
  CHECK(x.dim() >= 1 && w1.dim() == 2 && w2.dim() == 2 && x.size(-1) == w1.size(1) &&
            w2.size(1) == w1.size(0),
        "gelu_mlp: expected x [..., C], w1 [F, C], w2 [C2, F], got x {}, w1 {}, w2 {}",
        shape_str(x.shape()), shape_str(w1.shape()), shape_str(w2.shape()));
  const Tensor x2 = x.value().reshape({-1, x.size(-1)});
  const bool g_x = x.requires_grad(), g_w1 = w1.requires_grad(), g_b1 = b1.requires_grad();
  const bool g_w2 = w2.requires_grad(), g_b2 = b2.requires_grad();
  const bool recording = grad_enabled() && (g_x || g_w1 || g_b1 || g_w2 || g_b2);
  // While recording, the forward asks for the pre-activation too (and drops it): the backward's
  // recomputation asks for it, and the same epilogue (the same GEMM plan) gives the same h bits.
  Tensor h;
  {
    Tensor pre_dropped;
    h = ops::linear_gelu_forward(x2, w1.value(), b1.value(), recording ? &pre_dropped : nullptr);
  }
  Shape y_shape = x.shape();
  y_shape.back() = w2.size(0);
  const Tensor y = ops::linear(h, w2.value(), b2.value()).view(y_shape);
  if (!recording) return Var(y);
  // Saved: x (a norm's output: kept as its recipe, autograd/recompute.h) and the weights; no
  // [N, F] tensor. The backward runs fc1's fused GEMM again for the pre-activation (the GELU's
  // derivative needs it) and h = gelu(pre) (dw2 needs it): one GEMM with the GELU in its
  // epilogue, about what an elementwise GELU pass over a kept pre-activation costs, instead of
  // the pre-activation kept per layer from the forward to the backward.
  return make_result(
      y, {x, w1, b1, w2, b2}, "gelu_mlp",
      [x_saved = save(x), w1_saved = save(w1), b1_saved = save(b1), w2_saved = save(w2),
       x_shape = x.shape(), g_x, g_w1, g_b1, g_w2, g_b2](const Tensor& dy) {
        // y = h . w2^T + b2  =>  dw2 = dy^T . h, db2 = sum of dy over rows;
        // h = gelu(x . w1^T + b1)  =>  dx, dw1, db1 by ops::linear_gelu_backward.
        const Tensor w2v = w2_saved.get(), w1v = w1_saved.get();
        const Tensor dy2 = dy.reshape({-1, w2v.size(0)});
        const Tensor x2 = x_saved.get().reshape({-1, x_shape.back()});
        Tensor pre, dx, dw1, db1, dw2, db2;
        {
          Tensor h;
          {
            cuda::NvtxRange range("linear_gelu");  // the recomputation, in the profile
            h = ops::linear_gelu_forward(x2, w1v, b1_saved.get(), &pre);
          }
          if (g_w2) {
            dw2 = ops::linear_weight_grad(dy2, h, g_b2 ? &db2 : nullptr);
          } else if (g_b2) {
            db2 = ops::sum(dy2, {0});
          }
        }  // h is freed before the hidden layer's gradient is formed
        if (g_x || g_w1 || g_b1) {
          ops::linear_gelu_backward(dy2, w2v, x2, w1v, std::move(pre), g_x ? &dx : nullptr,
                                    g_w1 ? &dw1 : nullptr, g_b1 ? &db1 : nullptr);
        }
        if (dx.defined()) dx = dx.reshape(x_shape);
        return std::vector<Tensor>{dx, dw1, db1, dw2, db2};
      });
}

namespace {

// The rmsnorm Node of y = rmsnorm(x, w) (rstd from the forward): shared by rmsnorm and the
// norm half of add_rmsnorm. y is recomputable from x (autograd/recompute.h): the Linear after
// the norm keeps x, which this backward keeps anyway, instead of a second [N, C] tensor, and
// makes y again (the same kernel on the same x and w: the same bits) when its dW needs it.
Var rmsnorm_result(const Tensor& y, const Var& x, const Var& w, const Tensor& rstd, float eps) {
  const bool need_dx = x.requires_grad(), need_dw = w.requires_grad();
  Var out =
      make_result(y, {x, w}, "rmsnorm",
                  [x_saved = save(x), w_saved = save(w), rstd, need_dx, need_dw](const Tensor& dy) {
                    // y = x * rstd * w  =>  dx = rstd (dy w - x rstd^2 mean(dy w x)),
                    // dw = sum_n dy x rstd
                    Tensor dx, dw;
                    ops::rmsnorm_backward(dy, x_saved.get(), w_saved.get(), rstd,
                                          need_dx ? &dx : nullptr, need_dw ? &dw : nullptr);
                    return std::vector<Tensor>{dx, dw};
                  });
  if (out.requires_grad()) {
    set_recipe(out, x, [wv = w.value(), eps](const Tensor& xv) {
      cuda::NvtxRange range("rmsnorm");  // a recomputation shows in the profile under its reader
      return ops::rmsnorm_forward(xv, wv, eps, nullptr);
    });
  }
  return out;
}

}  // namespace

Var rmsnorm(const Var& x, const Var& w, float eps) {
  cuda::NvtxRange range("rmsnorm");
  Tensor rstd;
  Tensor y = ops::rmsnorm_forward(x.value(), w.value(), eps, &rstd);
  return rmsnorm_result(y, x, w, rstd, eps);
}

std::pair<Var, Var> add_rmsnorm(const Var& x, const Var& r, const Var& w, float eps) {
  cuda::NvtxRange range("add_rmsnorm");
  Tensor hv, rstd;
  Tensor y = ops::add_rmsnorm_forward(x.value(), r.value(), w.value(), eps, &hv, &rstd);
  Var h = make_result(hv, {x, r}, "add", [](const Tensor& dh) {
    return std::vector<Tensor>{dh, dh};  // h = x + r (one shape)  =>  dx = dr = dh
  });
  return {h, rmsnorm_result(y, h, w, rstd, eps)};
}

Var layernorm(const Var& x, const Var& w, const Var& b, float eps) {
  Tensor xv = x.value(), wv = w.value(), mean, rstd;
  Tensor y = ops::layernorm_forward(xv, wv, b.value(), eps, &mean, &rstd);
  const bool need_dx = x.requires_grad(), need_dw = w.requires_grad(), need_db = b.requires_grad();
  Var out = make_result(y, {x, w, b}, "layernorm",
                        [xv, wv, mean, rstd, need_dx, need_dw, need_db](const Tensor& dy) {
                          // y = (x - mean) rstd w + b  =>  dx = rstd (g - mean(g) - xhat mean(g
                          // xhat)) with g = dy w;  dw = sum_n dy xhat,  db = sum_n dy
                          Tensor dx, dw, db;
                          ops::layernorm_backward(dy, xv, wv, mean, rstd, need_dx ? &dx : nullptr,
                                                  need_dw ? &dw : nullptr, need_db ? &db : nullptr);
                          return std::vector<Tensor>{dx, dw, db};
                        });
  // Recomputable from x, which this backward keeps anyway, as rmsnorm's output is.
  if (out.requires_grad()) {
    set_recipe(out, x, [wv, bv = b.value(), eps](const Tensor& v) {
      return ops::layernorm_forward(v, wv, bv, eps, nullptr, nullptr);
    });
  }
  return out;
}

Var rotary(const Var& x, const ops::RotaryOptions& options) {
  cuda::NvtxRange range("rotary");
  Tensor y = ops::rotary_forward(x.value(), options);
  return make_result(y, {x}, "rotary", [options](const Tensor& dy) {
    // y = Rot(theta) x  =>  dx = Rot(-theta) dy
    return std::vector<Tensor>{ops::rotary_backward(dy, options)};
  });
}

Var dropout(const Var& x, float p, uint64_t seed, uint64_t stream) {
  cuda::NvtxRange range("dropout");
  Tensor y = ops::dropout_forward(x.value(), p, seed, stream);
  return make_result(y, {x}, "dropout", [p, seed, stream](const Tensor& dy) {
    // y = x * keep(seed, stream) / (1 - p)  =>  dx = dy * keep(seed, stream) / (1 - p)
    return std::vector<Tensor>{ops::dropout_backward(dy, p, seed, stream)};
  });
}

Var dropout(const Var& x, float p, bool training, Generator& gen) {
  if (!training || p == 0.0f) return x;
  return dropout(x, p, gen.seed(), gen.next_stream());
}

Var smooth_l1_loss(const Var& pred, const Var& target, float beta, const Tensor& weight) {
  cuda::NvtxRange range("smooth_l1_loss");
  Tensor loss = ops::smooth_l1_loss(pred.value(), target.value(), beta, weight);
  const bool need_dp = pred.requires_grad(), need_dt = target.requires_grad();
  return make_result(loss, {pred, target}, "smooth_l1_loss",
                     [p_saved = save(pred), t_saved = save(target), beta, weight, need_dp,
                      need_dt](const Tensor& dloss) {
                       // loss = mean_n sum_f w_f l(p - t)  =>  dp = dloss w_f l'(p - t) / N;
                       // l is even, so dt is the same formula with p and t swapped.
                       const Tensor pv = p_saved.get(), tv = t_saved.get();
                       std::vector<Tensor> grads(2);
                       if (need_dp)
                         grads[0] = ops::smooth_l1_loss_backward(dloss, pv, tv, beta, weight);
                       if (need_dt)
                         grads[1] = ops::smooth_l1_loss_backward(dloss, tv, pv, beta, weight);
                       return grads;
                     });
}

Var mse_loss(const Var& pred, const Var& target) {
  cuda::NvtxRange range("mse_loss");
  const bool need_dp = pred.requires_grad(), need_dt = target.requires_grad();
  return make_result(
      ops::mse_loss(pred.value(), target.value()), {pred, target}, "mse_loss",
      [p_saved = save(pred), t_saved = save(target), need_dp, need_dt](const Tensor& dloss) {
        // loss = mean((p - t)^2)  =>  dp = 2 dloss (p - t) / n,  dt = -dp
        const Tensor pv = p_saved.get(), tv = t_saved.get();
        std::vector<Tensor> grads(2);
        if (need_dp) grads[0] = ops::mse_loss_backward(dloss, pv, tv);
        if (need_dt) grads[1] = ops::mse_loss_backward(dloss, tv, pv);
        return grads;
      });
}

}  // namespace mt
