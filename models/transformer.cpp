#include "models/transformer.h"

#include "autograd/functions_basic.h"
#include "autograd/recompute.h"
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
  // Each norm's output feeds a Linear, whose backward needs it for dW: the Linear keeps the
  // recipe (norm, x) instead, and x is what the norm's own backward keeps anyway: one [B, T, C]
  // tensor less per norm (autograd/recompute.h).
  auto norm = [](const std::shared_ptr<Module>& n) {
    return [n](const Var& v) { return n->forward(v); };
  };
  const Var h = add(x, attn->forward(recomputable(norm(norm1), x)));
  return add(h, mlp->forward(recomputable(norm(norm2), h)));
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
  Var h = input_proj->forward(x);
  for (auto& layer : layers) h = layer->forward(h);
  return fc_out->forward(h);
}

void BTCTransformer::set_model_precision(Precision p) {
  set_precision(p);
  if (cfg_.target == "delta") fc_out->set_precision(Precision::Float32);
}

}  // namespace mt
