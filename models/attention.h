// Multi-head causal self-attention with a fused QKV projection and rotary embeddings: the seed's
// flash_attn MHA.
//
//   qkv = Wqkv(x)                        [B, T, 3C]; output rows: q, then k, then v, each
//                                        head-major (row h*D + d of the q block is head h, dim d)
//   q, k, v = views of qkv as [B, T, H, D]
//   q, k = rotary(q), rotary(k)          rotate-half, base 10000, over rotary_dim channels
//   y = softmax(q k^T / sqrt(D) + causal mask), dropout(p) on the probabilities (training), @ v
//   out = out_proj(y as [B, T, C])
#pragma once

#include <memory>

#include "models/layers.h"

namespace mt {

struct AttentionConfig {
  int64_t d_model = 64;
  int64_t n_heads = 8;
  double dropout = 0.05;       // attention-probability dropout while training
  double rotary_base = 10000;  // RoPE base
  int64_t rotary_dim = 0;      // 0: the whole head
  bool bias = true;            // on Wqkv and out_proj
  bool causal = true;
  bool deterministic = false;  // bit-reproducible attention backward on the GPU (slower)
};

class MultiHeadAttention : public Module {
 public:
  MultiHeadAttention(const AttentionConfig& cfg, Generator& gen,
                     LinearInit init = LinearInit::PyTorch, DType dtype = kFloat32);
  Var forward(const Var& x) override;  // [B, T, C] -> [B, T, C]

  const AttentionConfig& config() const { return cfg_; }
  std::shared_ptr<Linear> Wqkv, out_proj;

 private:
  AttentionConfig cfg_;
};

}  // namespace mt
