// The pre-norm Transformer block and the BTC forecasting model built from a ModelConfig.
//
//   BTCTransformer: x [B, T, F] -> input_proj -> layers.0 .. layers.{L-1} -> fc_out -> [B, T, F]
//   TransformerBlock: x = x + attn(norm1(x)); x = x + mlp(norm2(x)), each residual add fused
//   with the norm that reads its result (norm2, the next block's norm1: add_then_norm)
//
// With models/configs/btc_seed.json (F 5, C 64, H 8, L 4, MLP 256) it has 200,133 parameters
// under PyTorch's names (input_proj.weight, layers.0.norm1.weight, layers.0.attn.Wqkv.weight,
// ..., fc_out.bias), so its safetensors load into the original run's PyTorch BTC model.
#pragma once

#include <memory>
#include <vector>

#include "models/attention.h"
#include "models/config.h"
#include "models/layers.h"

namespace mt {

class TransformerBlock : public Module {
 public:
  TransformerBlock(const ModelConfig& cfg, Generator& gen, DType dtype = kFloat32);
  Var forward(const Var& x) override;  // [B, T, C] -> [B, T, C]
  // The block on x whose norm1(x) is given (x_normed), returning {out, next_norm(out)}: each
  // residual add is fused with the norm that reads its result (add_then_norm), the second one
  // with the next block's norm1 (undefined .second when next_norm is null).
  std::pair<Var, Var> forward_normed(const Var& x, const Var& x_normed, Module* next_norm);

  std::shared_ptr<Module> norm1;  // RMSNorm or LayerNorm, as the config's "norm" says
  std::shared_ptr<MultiHeadAttention> attn;
  std::shared_ptr<Module> norm2;
  std::shared_ptr<MLP> mlp;
};

class BTCTransformer : public Module {
 public:
  // Parameters are drawn from `gen` in registration order (input_proj, layers.0, ..., fc_out),
  // so the same seed gives the same initial weights on every device.
  BTCTransformer(const ModelConfig& cfg, Generator& gen, DType dtype = kFloat32);
  Var forward(const Var& x) override;  // [B, T, F] -> [B, T, F]

  // Sets the precision of every module; with target "delta" fc_out then stays float32 (the
  // head's small outputs need float32's resolution: see issue 4) and reads the bf16 trunk
  // widened. With target "level" the head is a bf16 GEMM like the others (as under PyTorch's
  // autocast) and forward() widens its output to float32, so the loss is float32 either way.
  void set_model_precision(Precision p);

  const ModelConfig& config() const { return cfg_; }

  std::shared_ptr<Linear> input_proj;
  std::vector<std::shared_ptr<TransformerBlock>> layers;
  std::shared_ptr<Linear> fc_out;

 private:
  ModelConfig cfg_;
};

}  // namespace mt
