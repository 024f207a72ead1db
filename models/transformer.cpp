#include "models/transformer.h"

#include <tuple>

#include "autograd/functions_basic.h"
#include "base/error.h"

namespace mt {

TransformerBlock::TransformerBlock(const ModelConfig& cfg, Generator& gen, DType dtype)
    : Module("TransformerBlock") {
  const LinearInit init = parse_linear_init(cfg.init);
  AttentionConfig ac;
  ac.d_model = cfg.d_model;
  ac.n_heads = cfg.n_heads;
  ac.dropout = cfg.attn_dropout;
  ac.rotary_base = cfg.rotary_base;
  ac.rotary_dim = cfg.rotary_dim;
  ac.bias = cfg.qkv_bias;
  ac.deterministic = cfg.deterministic_attention;
  // Registered in the PyTorch model's order (attn, norm1, norm2, mlp: torch_baseline.py's
  // Layer), so named_parameters() lists the same names in the same order as PyTorch's.
  attn = register_module("attn", std::make_shared<MultiHeadAttention>(ac, gen, init, dtype));
  norm1 = register_module("norm1", make_norm(cfg.norm, cfg.d_model, cfg.norm_eps, dtype));
  norm2 = register_module("norm2", make_norm(cfg.norm, cfg.d_model, cfg.norm_eps, dtype));
  mlp = register_module("mlp", std::make_shared<MLP>(cfg.d_model, cfg.ff_dim(), gen, init, dtype));
}

Var TransformerBlock::forward(const Var& x) {
  return forward_normed(x, norm1->forward(x), nullptr).first;
}

std::pair<Var, Var> TransformerBlock::forward_normed(const Var& x, const Var& x_normed,
                                                     Module* next_norm) {
  auto [h, h_normed] = add_then_norm(*norm2, x, attn->forward(x_normed));
  Var m = mlp->forward(h_normed);
  if (next_norm == nullptr) return {add(h, m), Var()};
  return add_then_norm(*next_norm, h, m);
}

BTCTransformer::BTCTransformer(const ModelConfig& cfg, Generator& gen, DType dtype)
    : Module("BTCTransformer"), cfg_(cfg) {
  cfg.validate();
  const LinearInit init = parse_linear_init(cfg.init);
  input_proj = register_module(
      "input_proj", std::make_shared<Linear>(cfg.input_dim(), cfg.d_model, true, gen, init, dtype));
  for (int i = 0; i < cfg.n_layers; ++i) {
    layers.push_back(register_module("layers." + std::to_string(i),
                                     std::make_shared<TransformerBlock>(cfg, gen, dtype)));
  }
  fc_out = register_module(
      "fc_out", std::make_shared<Linear>(cfg.d_model, cfg.n_features, true, gen, init, dtype));
}

Var BTCTransformer::forward(const Var& x) {
  CHECK(x.dim() == 3 && x.size(2) == cfg_.input_dim(),
        "BTCTransformer: expected x [B, T, {}], got {}", cfg_.input_dim(), x.value().describe());
  if (precision() == Precision::BF16Mixed) refresh_bf16_weights(*this);  // one launch, if stale
  // Block i hands block i + 1 its output and that output's norm1, made by one fused pass.
  Var h = input_proj->forward(x);
  Var h_normed = layers.empty() ? Var() : layers[0]->norm1->forward(h);
  for (size_t i = 0; i < layers.size(); ++i) {
    Module* next = i + 1 < layers.size() ? layers[i + 1]->norm1.get() : nullptr;
    std::tie(h, h_normed) = layers[i]->forward_normed(h, h_normed, next);
  }
  // The head's output, and so the loss, in float32 (docs/design.md, Numerics): under bf16-mixed
  // the head's bf16 GEMM output is widened here, as autocast hands PyTorch's loss a float32 input.
  const Var y = fc_out->forward(h);
  return y.dtype() == kBFloat16 ? cast(y, kFloat32) : y;
}

void BTCTransformer::set_model_precision(Precision p) {
  set_precision(p);
  if (cfg_.target == "delta") fc_out->set_precision(Precision::Float32);
}

}  // namespace mt
