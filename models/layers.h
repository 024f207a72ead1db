// The small modules: Linear, RMSNorm, LayerNorm and the GELU MLP.
#pragma once

#include <memory>

#include "models/module.h"

namespace mt {

enum class LinearInit {
  PyTorch,  // weight kaiming-uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)); bias U(+-1/sqrt(fan_in))
  Xavier,   // weight U(+-sqrt(6 / (fan_in + fan_out))); bias zero
};
LinearInit parse_linear_init(const std::string& name);  // "pytorch" | "xavier"

// y = x W^T + b, W [out, in] (PyTorch's layout), b [out]. Under Precision::BF16Mixed x and W are
// rounded to bfloat16 for the GEMM, which accumulates and returns float32; the bias is added in
// float32.
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias, Generator& gen,
         LinearInit init = LinearInit::PyTorch, DType dtype = kFloat32);
  Var forward(const Var& x) override;  // [.., in] -> [.., out]

  const Var& weight() const { return weight_; }
  const Var& bias() const { return bias_; }  // undefined without bias
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

 private:
  int64_t in_, out_;
  Var weight_, bias_;
};

// y = x / sqrt(mean(x^2 over C) + eps) * w, w [C] initialized to ones (torch.nn.RMSNorm).
// Always computed in the input's float dtype (float32 under bf16-mixed).
class RMSNorm : public Module {
 public:
  RMSNorm(int64_t channels, double eps, DType dtype = kFloat32);
  Var forward(const Var& x) override;  // [.., C] -> [.., C]
  const Var& weight() const { return weight_; }

 private:
  double eps_;
  Var weight_;
};

// y = (x - mean) / sqrt(var + eps) * w + b over C, w [C] initialized to ones and b [C] to zeros
// (torch.nn.LayerNorm). Always computed in the input's float dtype (float32 under bf16-mixed).
class LayerNorm : public Module {
 public:
  LayerNorm(int64_t channels, double eps, DType dtype = kFloat32);
  Var forward(const Var& x) override;  // [.., C] -> [.., C]
  const Var& weight() const { return weight_; }
  const Var& bias() const { return bias_; }

 private:
  double eps_;
  Var weight_, bias_;
};

// The normalization a model config names: "rmsnorm" (RMSNorm) or "layernorm" (LayerNorm).
std::shared_ptr<Module> make_norm(const std::string& kind, int64_t channels, double eps,
                                  DType dtype = kFloat32);

// fc2(gelu_tanh(fc1(x))): C -> F -> C, computed as one fused op (gelu_mlp) on fc1's and fc2's
// parameters. Under Precision::BF16Mixed its operands are rounded to bf16, as in Linear.
class MLP : public Module {
 public:
  MLP(int64_t channels, int64_t hidden, Generator& gen, LinearInit init = LinearInit::PyTorch,
      DType dtype = kFloat32);
  Var forward(const Var& x) override;  // [.., C] -> [.., C]

  std::shared_ptr<Linear> fc1, fc2;
};

}  // namespace mt
