// bench_train: the seed model's whole training step on the GPU, timed as PyTorch's baseline
// harness times it, so that the two can stand side by side (scripts/bench_train_torch.py runs
// PyTorch eager and torch.compile in the same session: `make bench-train`).
//
// One step = forward in bf16-mixed precision, the smooth-L1 loss of positions 0..T-2 against
// the inputs at 1..T-1 (beta 0.01, weights [1,1,1,1,0.25]), backward, global-norm clip 0.5 and
// a fused AdamW update (lr 5e-5, weight decay 1e-3). Inputs are standard normal [B, T, 5].
// Prints JSON lines per batch size: median ms per step over 30 timed steps after 10 warm-up
// steps, tokens/s and the peak GPU memory of the framework's allocator (the cuBLASLt workspace
// and, with the graph, the memory the graph holds included), for the step launched kernel by
// kernel ("graph": false) and as one CUDA graph (true: the trainer's default). Also the forward
// alone in eval mode (inference), as the baseline measures it, both ways.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "autograd/functions_basic.h"
#include "autograd/functions_nn.h"
#include "cuda/runtime.h"
#include "models/transformer.h"
#include "optim/clip.h"
#include "optim/factory.h"
#include "training/cli.h"
#include "training/step_graph.h"

using namespace mt;

namespace {

// Median wall time of `iters` calls of fn after `warmup`, each call followed by a device sync
// (the same as timing with a pair of CUDA events around each call).
template <typename Fn>
double median_ms(Fn&& fn, int iters, int warmup) {
  for (int i = 0; i < warmup; ++i) fn();
  cuda::synchronize();
  std::vector<double> times;
  for (int i = 0; i < iters; ++i) {
    auto start = std::chrono::steady_clock::now();
    fn();
    cuda::synchronize();
    times.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
            .count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void bench_batch(int64_t B, int64_t T, Device dev) {
  // Each batch size from an empty cache, as a process of its own: cached blocks of another size
  // (up to twice a request's) would otherwise count in its peak.
  cuda::empty_cache();
  Generator gen(0);
  BTCTransformer model(ModelConfig{}, gen);
  model.to(dev);
  model.set_model_precision(Precision::BF16Mixed);
  Generator dropout_gen(7);
  model.set_generator(&dropout_gen);
  model.train();
  auto opt = make_optimizer({{"name", "adamw"}, {"lr", 5e-5}, {"weight_decay", 1e-3}},
                            model.named_parameters());
  const std::vector<Var> params = model.parameters();
  Tensor weights = Tensor::from_vector<float>({1, 1, 1, 1, 0.25f}, {5}).to(dev);
  Generator data_gen(1);
  Tensor x = Tensor::randn({B, T, 5}, data_gen, kFloat32, dev);
  Var input(x);
  Var target(x.narrow(1, 1, T - 1));

  auto step = [&] {
    Var pred = narrow(model(input), 1, 0, T - 1);
    Var loss = smooth_l1_loss(pred, target, 0.01f, weights);
    loss.backward();
    ClipResult clip = clip_grad_norm(params, 0.5);
    opt->step(clip.coef);
    opt->zero_grad();
  };
  // The step launched kernel by kernel, then as one CUDA graph (training/step_graph.h, the
  // trainer's default on a GPU); each with its own peak.
  for (const bool graph : {false, true}) {
    training::StepGraph step_graph(dropout_gen, dev);
    cuda::reset_peak_memory();
    const double ms =
        graph ? median_ms([&] { step_graph.run(step); }, 30, 10) : median_ms(step, 30, 10);
    const double peak_mib = static_cast<double>(cuda::memory_stats().peak_allocated) / (1 << 20);
    std::printf(
        "{\"impl\": \"minitensor\", \"mode\": \"train\", \"graph\": %s, \"B\": %lld, "
        "\"T\": %lld, \"ms_step\": %.3f, \"tok_per_s\": %.0f, \"peak_MiB\": %.0f%s}\n",
        graph ? "true" : "false", static_cast<long long>(B), static_cast<long long>(T), ms,
        B * T / ms * 1e3, peak_mib,
        graph ? fmt::format(", \"graph_nodes\": {}", step_graph.nodes()).c_str() : "");
  }

  model.eval();
  Var y;
  auto infer = [&] {
    NoGradGuard no_grad;
    y = model(input);
  };
  for (const bool graph : {false, true}) {
    training::StepGraph infer_graph(dropout_gen, dev);
    const double fwd_ms =
        graph ? median_ms([&] { infer_graph.run(infer); }, 30, 10) : median_ms(infer, 30, 10);
    std::printf(
        "{\"impl\": \"minitensor\", \"mode\": \"inference\", \"graph\": %s, \"B\": %lld, "
        "\"T\": %lld, \"ms_fwd\": %.3f}\n",
        graph ? "true" : "false", static_cast<long long>(B), static_cast<long long>(T), fwd_ms);
  }
  y = Var();
  std::fflush(stdout);
}

}  // namespace

int run(int argc, char** argv) {
  std::vector<int64_t> batches{16, 32, 64};
  if (argc > 1) batches = {training::parse_int_flag("batch size", argv[1])};
  if (!cuda::available()) {
    std::printf("bench_train: no GPU; this benchmark times the GPU training step\n");
    return 0;
  }
  std::fprintf(stderr, "bench_train on %s\n", cuda::device_name(0).c_str());
  for (int64_t B : batches) bench_batch(B, 2048, Device::cuda());
  return 0;
}

int main(int argc, char** argv) { return training::run_app("bench_train", run, argc, argv); }
