#include "models/layers.h"

#include <cmath>

#include "autograd/functions_basic.h"
#include "autograd/functions_nn.h"
#include "autograd/parameter_version.h"
#include "base/error.h"
#include "ops/convert_many.h"

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
  const Var input = gemm_input(x);
  const auto [w, b] = gemm_weights();
  return linear(input, w, b);
}

// bf16-mixed reads bf16 unless the model runs in float64 (a gradcheck): float64 weights and
// inputs stay float64.
bool Linear::reads_bf16() const {
  return precision() == Precision::BF16Mixed && weight_.dtype() != kFloat64;
}

Var Linear::gemm_input(const Var& x) const {
  if (reads_bf16() && x.dtype() != kFloat64) return x.dtype() == kBFloat16 ? x : cast(x, kBFloat16);
  const bool widen = x.dtype() == kBFloat16 && weight_.dtype() != kBFloat16;
  return widen ? cast(x, weight_.dtype()) : x;
}

std::pair<Var, Var> Linear::gemm_weights() {
  if (!reads_bf16()) return {weight_, bias_};
  if (bf16_copies_stale()) refresh_bf16_weights(*this);  // used alone, outside a model
  return {cast_cached(weight_, weight_bf16_),
          bias_.defined() ? cast_cached(bias_, bias_bf16_) : Var()};
}

bool Linear::bf16_copies_stale() const {
  return !weight_bf16_.defined() || copies_version_ != parameters_version() ||
         copies_source_ != weight_.value().storage().get() ||
         weight_bf16_.device() != weight_.device();
}

void Linear::set_bf16_copies(Tensor w, Tensor b) {
  CHECK(w.defined() && w.dtype() == kBFloat16 && w.shape() == weight_.shape() &&
            b.defined() == bias_.defined(),
        "Linear: expected bf16 copies of weight {} and the bias, got {}",
        weight_.value().describe(),
        w.defined() ? w.describe() : std::string("an undefined tensor"));
  weight_bf16_ = std::move(w);
  bias_bf16_ = std::move(b);
  copies_version_ = parameters_version();
  copies_source_ = weight_.value().storage().get();
}

namespace {

void collect_stale(Module& m, std::vector<Linear*>& out) {
  if (auto* linear = dynamic_cast<Linear*>(&m)) {
    if (linear->reads_bf16() && linear->bf16_copies_stale()) {
      out.push_back(linear);
    }
  }
  for (auto& child : m.children()) collect_stale(*child.second, out);
}

// Each copy starts 256 bytes (128 bf16) after the previous one's start, as a separate device
// allocation would: the GEMM sees the alignment it gets from the allocator.
constexpr int64_t kCopyAlign = 128;
int64_t aligned(int64_t n) { return (n + kCopyAlign - 1) / kCopyAlign * kCopyAlign; }

}  // namespace

int refresh_bf16_weights(Module& root) {
  std::vector<Linear*> stale;
  collect_stale(root, stale);
  if (stale.empty()) return 0;
  const Device device = stale[0]->weight().device();
  int64_t total = 0;
  for (Linear* l : stale) {
    CHECK(l->weight().device() == device, "refresh_bf16_weights: Linears on {} and {}",
          device.str(), l->weight().device().str());
    total += aligned(l->weight().value().numel());
    if (l->bias().defined()) total += aligned(l->bias().value().numel());
  }
  const Tensor flat = Tensor::empty({total}, kBFloat16, device);
  std::vector<Tensor> dst, src;
  int64_t at = 0;
  auto slot = [&](const Var& p) {
    const Tensor view = flat.narrow(0, at, p.value().numel()).view(p.shape());
    at += aligned(p.value().numel());
    dst.push_back(view);
    src.push_back(p.value().contiguous());
    return view;
  };
  std::vector<std::pair<Tensor, Tensor>> copies;
  for (Linear* l : stale) {
    Tensor w = slot(l->weight());
    copies.emplace_back(w, l->bias().defined() ? slot(l->bias()) : Tensor());
  }
  ops::convert_many_(dst, src);
  for (size_t i = 0; i < stale.size(); ++i) {
    stale[i]->set_bf16_copies(copies[i].first, copies[i].second);
  }
  return static_cast<int>(stale.size());
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

std::pair<Var, Var> RMSNorm::forward_add(const Var& x, const Var& r) {
  CHECK(x.dim() >= 1 && x.size(-1) == weight_.size(0), "RMSNorm({}): expected [..., {}], got {}",
        weight_.size(0), weight_.size(0), x.value().describe());
  return add_rmsnorm(x, r, weight_, static_cast<float>(eps_));
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

std::pair<Var, Var> add_then_norm(Module& norm, const Var& x, const Var& r) {
  if (auto* rms = dynamic_cast<RMSNorm*>(&norm)) return rms->forward_add(x, r);
  Var h = add(x, r);
  return {h, norm.forward(h)};
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
  // Exactly the operands fc1 and fc2 would read (bf16 copies under bf16-mixed); the output
  // stays in that dtype, as a Linear's does.
  const auto [w1, b1] = fc1->gemm_weights();
  const auto [w2, b2] = fc2->gemm_weights();
  return gelu_mlp(fc1->gemm_input(x), w1, b1, w2, b2);
}

}  // namespace mt
