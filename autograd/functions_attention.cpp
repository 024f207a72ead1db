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

Var packed_attention(const Var& qkv, const ops::RotaryOptions& rope,
                     const AttentionOptions& options) {
  cuda::NvtxRange range("packed_attention");
  const Tensor rotated = ops::rotary_qkv_forward(qkv.value(), rope);  // q, k rotated; v copied
  Tensor lse;
  const Tensor out = ops::attention_forward(rotated.select(2, 0), rotated.select(2, 1),
                                            rotated.select(2, 2), options, &lse);
  return make_result(
      out, {qkv}, "packed_attention", [rotated, out, lse, rope, options](const Tensor& dout) {
        // out = attention(rope(q), rope(k), v)  =>  the attention backward gives d rope(q),
        // d rope(k) and dv, written into one packed gradient; then dq = Rot(-theta) d rope(q)
        // and dk likewise, in place (ops/rotary.h)
        Tensor dqkv = Tensor::empty(rotated.shape(), rotated.dtype(), rotated.device());
        ops::attention_backward_into(rotated.select(2, 0), rotated.select(2, 1),
                                     rotated.select(2, 2), out, lse, dout, options,
                                     {dqkv.select(2, 0), dqkv.select(2, 1), dqkv.select(2, 2)});
        ops::rotary_qkv_backward_(dqkv, rope);
        return std::vector<Tensor>{dqkv};
      });
}

}  // namespace mt
