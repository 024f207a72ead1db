// The small modules: Linear, RMSNorm, LayerNorm and the GELU MLP.
#pragma once

#include <memory>
#include <utility>

#include "models/module.h"

namespace mt {

enum class LinearInit {
  PyTorch,  // weight kaiming-uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)); bias U(+-1/sqrt(fan_in))
  Xavier,   // weight U(+-sqrt(6 / (fan_in + fan_out))); bias zero
};
LinearInit parse_linear_init(const std::string& name);  // "pytorch" | "xavier"

// y = x W^T + b, W [out, in] (PyTorch's layout), b [out].
//
// Under Precision::BF16Mixed (and x not float64) the GEMM reads bf16 x (a float32 input is cast
// first) and bf16 copies of W and b, accumulates in float32 and writes bf16: the activations stay
// bf16 from one op to the next. The copies are made once per optimizer step, not per forward:
// refresh_bf16_weights converts every stale copy of a model in one launch, after which they
// serve every forward until a parameter changes (autograd/parameter_version.h). Gradients reach
// the float32 master weights through cast_cached (cast back to float32). Under Float32 a bf16
// input is widened to the weight's dtype (a float32 head reading the bf16-mixed model's output).
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias, Generator& gen,
         LinearInit init = LinearInit::PyTorch, DType dtype = kFloat32);
  Var forward(const Var& x) override;  // [.., in] -> [.., out]

  // What forward's GEMM reads, for a fused op that stands in for it (a GEMM with an epilogue):
  // x in the GEMM's dtype, and {weight, bias} as differentiable Vars (under bf16-mixed the bf16
  // copies, cast_cached from the float32 masters; else the parameters themselves). forward(x)
  // is linear(gemm_input(x), gemm_weights()).
  Var gemm_input(const Var& x) const;
  std::pair<Var, Var> gemm_weights();

  const Var& weight() const { return weight_; }
  const Var& bias() const { return bias_; }  // undefined without bias
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

  // The bf16 copies of weight and bias (bias: undefined without one) that bf16-mixed reads;
  // undefined before the first refresh.
  const Tensor& weight_bf16() const { return weight_bf16_; }
  const Tensor& bias_bf16() const { return bias_bf16_; }
  // Whether the GEMM reads bf16 weights: under bf16-mixed, unless the weights are float64.
  bool reads_bf16() const;
  // Whether those copies are missing or older than the parameters.
  bool bf16_copies_stale() const;
  // Adopts w and b (bias: undefined without one) as the copies of the current parameters
  // (refresh_bf16_weights makes them).
  void set_bf16_copies(Tensor w, Tensor b);

 private:
  int64_t in_, out_;
  Var weight_, bias_;
  Tensor weight_bf16_, bias_bf16_;
  uint64_t copies_version_ = 0;          // parameters_version() when they were made
  const void* copies_source_ = nullptr;  // weight_'s storage then (to() replaces it)
};

// Makes new bf16 copies for every Linear under root (itself included) that runs in bf16-mixed
// and whose copies are stale: one buffer for all of them and one multi-tensor conversion
// (ops::convert_many_: one kernel launch for up to 64 tensors). A new buffer each time, never
// written in place: a graph recorded before the refresh keeps reading the copies it saved.
// Returns the number of Linears refreshed.
int refresh_bf16_weights(Module& root);

// y = x / sqrt(mean(x^2 over C) + eps) * w, w [C] initialized to ones (torch.nn.RMSNorm).
// Computed in the input's float dtype: bf16 in, bf16 out under bf16-mixed (float32 statistics,
// float32 weight).
class RMSNorm : public Module {
 public:
  RMSNorm(int64_t channels, double eps, DType dtype = kFloat32);
  Var forward(const Var& x) override;  // [.., C] -> [.., C]
  // {x + r, forward(x + r)}: the residual add and this norm in one pass (autograd's add_rmsnorm).
  std::pair<Var, Var> forward_add(const Var& x, const Var& r);
  const Var& weight() const { return weight_; }

 private:
  double eps_;
  Var weight_;
};

// y = (x - mean) / sqrt(var + eps) * w + b over C, w [C] initialized to ones and b [C] to zeros
// (torch.nn.LayerNorm). Computed in the input's float dtype, as RMSNorm.
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

// {x + r, norm(x + r)}: the pre-norm block's residual add and the norm that reads its result.
// Fused into one pass when norm is an RMSNorm (RMSNorm::forward_add); else the add, then norm.
std::pair<Var, Var> add_then_norm(Module& norm, const Var& x, const Var& r);

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
