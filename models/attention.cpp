#include "models/attention.h"

#include "autograd/functions_attention.h"
#include "autograd/functions_basic.h"
#include "autograd/functions_nn.h"
#include "base/error.h"

namespace mt {

MultiHeadAttention::MultiHeadAttention(const AttentionConfig& cfg, Generator& gen, LinearInit init,
                                       DType dtype)
    : Module("MultiHeadAttention"), cfg_(cfg) {
  CHECK(cfg.d_model > 0 && cfg.n_heads > 0 && cfg.d_model % cfg.n_heads == 0,
        "MultiHeadAttention: n_heads {} must divide d_model {}", cfg.n_heads, cfg.d_model);
  const int64_t head_dim = cfg.d_model / cfg.n_heads;
  CHECK(cfg.rotary_dim >= 0 && cfg.rotary_dim <= head_dim && cfg.rotary_dim % 2 == 0 &&
            (cfg.rotary_dim > 0 || head_dim % 2 == 0),
        "MultiHeadAttention: rotary_dim must be even and <= head dim {}, got {}", head_dim,
        cfg.rotary_dim);
  CHECK(cfg.dropout >= 0.0 && cfg.dropout < 1.0, "MultiHeadAttention: dropout {} not in [0, 1)",
        cfg.dropout);
  Wqkv = register_module(
      "Wqkv", std::make_shared<Linear>(cfg.d_model, 3 * cfg.d_model, cfg.bias, gen, init, dtype));
  out_proj = register_module(
      "out_proj", std::make_shared<Linear>(cfg.d_model, cfg.d_model, cfg.bias, gen, init, dtype));
}

Var MultiHeadAttention::forward(const Var& x) {
  CHECK(x.dim() == 3 && x.size(2) == cfg_.d_model,
        "MultiHeadAttention: expected x [B, T, {}], got {}", cfg_.d_model, x.value().describe());
  const int64_t B = x.size(0), T = x.size(1), C = cfg_.d_model, H = cfg_.n_heads, D = C / H;
  // [B, T, 3C] viewed as [B, T, 3, H, D]: the fused projection's rows are q, k, v, each
  // head-major. packed_attention rotates q and k and attends in one differentiable step whose
  // backward returns one packed gradient (autograd/functions_attention.h).
  Var qkv = view(Wqkv->forward(x), {B, T, 3, H, D});
  ops::RotaryOptions rope;
  rope.rotary_dim = cfg_.rotary_dim > 0 ? cfg_.rotary_dim : -1;
  rope.base = cfg_.rotary_base;

  AttentionOptions opt;
  opt.causal = cfg_.causal;
  opt.deterministic = cfg_.deterministic;
  if (is_training() && cfg_.dropout > 0.0) {
    // One draw per call: the mask is a function of (seed, stream), regenerated in backward.
    Generator& gen = generator();
    opt.dropout_p = static_cast<float>(cfg_.dropout);
    opt.seed = gen.seed();
    opt.offset = gen.next_stream();
    opt.offset_base = gen.device_base();  // set while a CUDA graph records the step
  }
  // bf16-mixed: qkv is bf16 (Wqkv's output), and so is y (float32 softmax statistics inside the
  // kernel).
  Var y = packed_attention(qkv, rope, opt);
  return out_proj->forward(reshape(y, {B, T, C}));
}

}  // namespace mt
