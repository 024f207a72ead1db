#include "autograd/functions_nn.h"

#include "cuda/nvtx.h"
#include "ops/dropout.h"
#include "ops/layernorm.h"
#include "ops/loss.h"
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

Var rmsnorm(const Var& x, const Var& w, float eps) {
  cuda::NvtxRange range("rmsnorm");
  Tensor rstd;
  Tensor y = ops::rmsnorm_forward(x.value(), w.value(), eps, &rstd);
  const bool need_dx = x.requires_grad(), need_dw = w.requires_grad();
  return make_result(
      y, {x, w}, "rmsnorm",
      [x_saved = save(x), w_saved = save(w), rstd, need_dx, need_dw](const Tensor& dy) {
        // y = x * rstd * w  =>  dx = rstd (dy w - x rstd^2 mean(dy w x)),
        //                       dw = sum_n dy x rstd
        Tensor dx, dw;
        ops::rmsnorm_backward(dy, x_saved.get(), w_saved.get(), rstd, need_dx ? &dx : nullptr,
                              need_dw ? &dw : nullptr);
        return std::vector<Tensor>{dx, dw};
      });
}

Var layernorm(const Var& x, const Var& w, const Var& b, float eps) {
  Tensor xv = x.value(), wv = w.value(), mean, rstd;
  Tensor y = ops::layernorm_forward(xv, wv, b.value(), eps, &mean, &rstd);
  const bool need_dx = x.requires_grad(), need_dw = w.requires_grad(), need_db = b.requires_grad();
  return make_result(y, {x, w, b}, "layernorm",
                     [xv, wv, mean, rstd, need_dx, need_dw, need_db](const Tensor& dy) {
                       // y = (x - mean) rstd w + b  =>  dx = rstd (g - mean(g) - xhat mean(g xhat))
                       // with g = dy w;  dw = sum_n dy xhat,  db = sum_n dy
                       Tensor dx, dw, db;
                       ops::layernorm_backward(dy, xv, wv, mean, rstd, need_dx ? &dx : nullptr,
                                               need_dw ? &dw : nullptr, need_db ? &db : nullptr);
                       return std::vector<Tensor>{dx, dw, db};
                     });
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
