// The probe behind dev/README.md, "Why the bf16 activations wait": the bf16-mixed loss error of
// the CPU and the GPU against float64 over 12 data seeds, and the GPU's again with its bf16
// attention computed by the exact float32 kernels instead of FlashAttention (MT_PROBE_EXACT_ATTN,
// which only probe_exact_attention.diff reads; without that diff the two GPU runs are the same).
// Copy it to tests/ on a tree with bf16_activations.patch applied to run it.
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
struct R {
  double loss;
  Tensor pred;
  std::map<std::string, Tensor> grads;
};
R step(BTCTransformer& m, const Tensor& x, const Tensor& y, Device d) {
  m.zero_grad();
  const Var pred = m(Var(x.to(d)));
  const Var loss = smooth_l1_loss(pred, Var(y.to(d).to(pred.dtype())), 0.5f);
  loss.backward();
  R r{loss.item(), pred.value().cpu().to(kFloat64), {}};
  for (const auto& [n, p] : m.named_parameters())
    if (p.grad().defined()) r.grads[n] = p.grad().cpu().to(kFloat64);
  return r;
}
}  // namespace

TEST_SUITE("cuda") {
  CUDA_TEST_CASE("cuda: probe bf16 loss error over seeds") {
    std::ifstream f("models/configs/tiny.json");
    const ModelConfig cfg = ModelConfig::from_json(nlohmann::json::parse(f).at("model"));
    for (int seed = 1; seed <= 12; ++seed) {
      Generator g1(42), g2(42), g3(42), dg(seed);
      BTCTransformer ref(cfg, g1, kFloat64), gpu(cfg, g2, kFloat32), cpu16(cfg, g3, kFloat32);
      ref.load_state_dict(gpu.state_dict());
      cpu16.load_state_dict(gpu.state_dict());
      ref.eval();
      gpu.eval();
      cpu16.eval();
      gpu.to(Device::cuda());
      gpu.set_model_precision(Precision::BF16Mixed);
      cpu16.set_model_precision(Precision::BF16Mixed);
      const Tensor x = Tensor::randn({3, 37, cfg.input_dim()}, dg, kFloat64);
      const Tensor y = Tensor::randn({3, 37, cfg.n_features}, dg, kFloat64);
      const R r = step(ref, x, y, Device::cpu());
      const R c = step(cpu16, x.to(kFloat32), y, Device::cpu());
      const R g = step(gpu, x.to(kFloat32), y, Device::cuda());
      setenv("MT_PROBE_EXACT_ATTN", "1", 1);
      const R ge = step(gpu, x.to(kFloat32), y, Device::cuda());
      unsetenv("MT_PROBE_EXACT_ATTN");
      std::printf("seed %2d exact-attention GPU: e_gpu_exact %+.3e  pred rel %.3e  vs cpu16 %.3e\n",
                  seed, ge.loss - r.loss, testing::rel_error(ge.pred, r.pred),
                  testing::rel_error(ge.pred, c.pred));
      double worst = 0;
      for (const auto& [n, gr] : r.grads) {
        const double a = testing::rel_error(c.grads.at(n), gr),
                     b = testing::rel_error(g.grads.at(n), gr);
        worst = std::max(worst, b / a);
      }
      std::printf(
          "seed %2d loss %.6f  e_cpu %+.3e  e_gpu %+.3e  ratio %.2f | pred rel cpu %.3e gpu %.3e "
          "gpu-cpu %.3e | worst grad ratio %.2f\n",
          seed, r.loss, c.loss - r.loss, g.loss - r.loss,
          std::abs(g.loss - r.loss) / std::abs(c.loss - r.loss), testing::rel_error(c.pred, r.pred),
          testing::rel_error(g.pred, r.pred), testing::rel_error(g.pred, c.pred), worst);
    }
  }
}
