#include "models/layers.h"

#include <cmath>

#include "autograd/functions_basic.h"
#include "autograd/functions_nn.h"
#include "autograd/recompute.h"
#include "base/error.h"

namespace mt {

LinearInit parse_linear_init(const std::string& name) {
  if (name == "pytorch") return LinearInit::PyTorch;
  if (name == "xavier") return LinearInit::Xavier;
  FAIL("linear init: expected \"pytorch\" or \"xavier\", got \"{}\"", name);
}

Linear::Linear(int64_t in_features, int64_t out_features, bool bias, Generator& gen,
               LinearInit init, DType dtype)
    : Module("Linear"), in_(in_features), out_(out_features) {
  CHECK(in_features > 0 && out_features > 0, "Linear: sizes must be positive, got in {} out {}",
        in_features, out_features);
  const double fan_in = static_cast<double>(in_features);
  const double fan_out = static_cast<double>(out_features);
  // kaiming_uniform_(a = sqrt(5)): gain sqrt(2 / (1 + 5)), bound gain * sqrt(3 / fan_in), which
  // is exactly 1 / sqrt(fan_in); nn.Linear's bias uses the same bound.
  const double bound =
      init == LinearInit::Xavier ? std::sqrt(6.0 / (fan_in + fan_out)) : 1.0 / std::sqrt(fan_in);
  weight_ = register_parameter(
      "weight", Tensor::uniform({out_features, in_features}, -bound, bound, gen, dtype));
  if (bias) {
    Tensor b = init == LinearInit::Xavier
                   ? Tensor::zeros({out_features}, dtype)
                   : Tensor::uniform({out_features}, -1.0 / std::sqrt(fan_in),
                                     1.0 / std::sqrt(fan_in), gen, dtype);
    bias_ = register_parameter("bias", b);
  }
}

Var Linear::forward(const Var& x) {
  CHECK(x.dim() >= 1 && x.size(-1) == in_, "Linear({}, {}): expected input [..., {}], got {}", in_,
        out_, in_, x.value().describe());
  if (precision() == Precision::BF16Mixed && x.dtype() != kFloat64) {
    // Autocast: the GEMM reads bf16 operands, accumulates in float32 and rounds its output to
    // bf16 once (bias included, as cuBLASLt's bias epilogue); the rest of the model continues
    // in float32. Gradients flow back through the casts into the float32 master weights.
    Var y = linear(cast(x, kBFloat16), cast(weight_, kBFloat16),
                   bias_.defined() ? cast(bias_, kBFloat16) : Var());
    return cast(y, kFloat32);
  }
  return linear(x, weight_, bias_);
}

RMSNorm::RMSNorm(int64_t channels, double eps, DType dtype) : Module("RMSNorm"), eps_(eps) {
  CHECK(channels > 0 && eps > 0.0, "RMSNorm: expected channels > 0 and eps > 0, got {} and {}",
        channels, eps);
  weight_ = register_parameter("weight", Tensor::ones({channels}, dtype));
}

Var RMSNorm::forward(const Var& x) {
  CHECK(x.dim() >= 1 && x.size(-1) == weight_.size(0), "RMSNorm({}): expected [..., {}], got {}",
        weight_.size(0), weight_.size(0), x.value().describe());
  return rmsnorm(x, weight_, static_cast<float>(eps_));
}

LayerNorm::LayerNorm(int64_t channels, double eps, DType dtype) : Module("LayerNorm"), eps_(eps) {
  CHECK(channels > 0 && eps > 0.0, "LayerNorm: expected channels > 0 and eps > 0, got {} and {}",
        channels, eps);
  weight_ = register_parameter("weight", Tensor::ones({channels}, dtype));
  bias_ = register_parameter("bias", Tensor::zeros({channels}, dtype));
}

Var LayerNorm::forward(const Var& x) {
  CHECK(x.dim() >= 1 && x.size(-1) == weight_.size(0), "LayerNorm({}): expected [..., {}], got {}",
        weight_.size(0), weight_.size(0), x.value().describe());
  return layernorm(x, weight_, bias_, static_cast<float>(eps_));
}

std::shared_ptr<Module> make_norm(const std::string& kind, int64_t channels, double eps,
                                  DType dtype) {
  if (kind == "rmsnorm") return std::make_shared<RMSNorm>(channels, eps, dtype);
  if (kind == "layernorm") return std::make_shared<LayerNorm>(channels, eps, dtype);
  FAIL("norm: expected \"rmsnorm\" or \"layernorm\", got \"{}\"", kind);
}

MLP::MLP(int64_t channels, int64_t hidden, Generator& gen, LinearInit init, DType dtype)
    : Module("MLP") {
  fc1 = register_module("fc1", std::make_shared<Linear>(channels, hidden, true, gen, init, dtype));
  fc2 = register_module("fc2", std::make_shared<Linear>(hidden, channels, true, gen, init, dtype));
}

// One autograd function for the whole MLP (autograd/functions_nn.h: gelu_mlp), so that the GPU
// fuses fc1's bias and the GELU into fc1's GEMM, and their backward into the GEMM that forms the
// hidden layer's gradient. Under bf16-mixed its operands are the bf16 casts that Linear makes.
Var MLP::forward(const Var& x) {
  CHECK(x.dim() >= 1 && x.size(-1) == fc1->in_features(), "MLP({}, {}): expected [..., {}], got {}",
        fc1->in_features(), fc1->out_features(), fc1->in_features(), x.value().describe());
  if (precision() == Precision::BF16Mixed && x.dtype() != kFloat64) {
    const auto bf16 = [](const Var& v) { return cast(v, kBFloat16); };
    const Var y = gelu_mlp(bf16(x), bf16(fc1->weight()), bf16(fc1->bias()), bf16(fc2->weight()),
                           bf16(fc2->bias()));
    return cast(y, kFloat32);
  }
  return gelu_mlp(x, fc1->weight(), fc1->bias(), fc2->weight(), fc2->bias());
}

}  // namespace mt
