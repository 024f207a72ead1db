// The CPU half of dev/README.md's "Why the bf16 activations wait": the CPU's bf16-mixed loss
// error against float64 over the probe's 12 seeds, with the CPU attention as it is and with
// FlashAttention's forward rounding emulated (MT_EMULATE_FA_P, read only by
// probe_fa_emulation.diff). Needs no GPU; copy it to tests/ on a tree with the diffs applied.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "autograd/functions_nn.h"
#include "models/transformer.h"
#include "tensor/random.h"
#include "tests/test_util.h"

using namespace mt;

namespace {
double loss_of(BTCTransformer& m, const Tensor& x, const Tensor& y) {
  NoGradGuard ng;
  const Var pred = m(Var(x));
  return smooth_l1_loss(pred, Var(y.to(pred.dtype())), 0.5f).item();
}
}  // namespace

TEST_CASE("probe: emulated FlashAttention rounding on the CPU") {
  std::ifstream f("models/configs/tiny.json");
  const ModelConfig cfg = ModelConfig::from_json(nlohmann::json::parse(f).at("model"));
  for (int seed = 1; seed <= 12; ++seed) {
    Generator g1(42), g2(42), dg(seed);
    BTCTransformer ref(cfg, g1, kFloat64), cpu16(cfg, g2, kFloat32);
    ref.load_state_dict(cpu16.state_dict());
    ref.eval();
    cpu16.eval();
    cpu16.set_model_precision(Precision::BF16Mixed);
    const Tensor x = Tensor::randn({3, 37, cfg.input_dim()}, dg, kFloat64);
    const Tensor y = Tensor::randn({3, 37, cfg.n_features}, dg, kFloat64);
    const double r = loss_of(ref, x, y);
    const double c = loss_of(cpu16, x.to(kFloat32), y);
    setenv("MT_EMULATE_FA_P", "1", 1);
    const double e = loss_of(cpu16, x.to(kFloat32), y);
    unsetenv("MT_EMULATE_FA_P");
    std::printf("seed %2d  e_cpu %+.3e  e_cpu_fa_emulated %+.3e\n", seed, c - r, e - r);
  }
}
