#include "autograd/functions_attention.h"

#include "cuda/nvtx.h"

namespace mt {

Var scaled_dot_product_attention(const Var& q, const Var& k, const Var& v,
                                 const AttentionOptions& options) {
  cuda::NvtxRange range("scaled_dot_product_attention");
  Tensor lse;
  Tensor out = ops::attention_forward(q.value(), k.value(), v.value(), options, &lse);
  // Saved for backward: q, k, v (views, no copy), out and lse [B, H, T]; the dropout mask is a
  // function of options.seed/offset and is regenerated, not saved.
  return make_result(out, {q, k, v}, "scaled_dot_product_attention",
                     [q_saved = save(q), k_saved = save(k), v_saved = save(v), out, lse,
                      options](const Tensor& dout) {
                       // out = softmax(scale q k^T) v  =>  dq, dk, dv by recomputing the
                       // probabilities from q, k and lse (ops/attention.cpp, backward passes)
                       ops::AttentionGrads g = ops::attention_backward(
                           q_saved.get(), k_saved.get(), v_saved.get(), out, lse, dout, options);
                       return std::vector<Tensor>{g.dq, g.dk, g.dv};
                     });
}

}  // namespace mt
