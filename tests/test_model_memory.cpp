// The memory of a small Transformer's forward and backward, stated term by term.
//
// After the forward, exactly the tensors the backwards name are alive (the saved set S, derived
// below for float32 and for bf16-mixed); during the backward the peak adds the largest working
// set, the MLP's, and the parameters' gradients. The same derivation holds on the CPU (host
// storage counters) and on the GPU (the caching allocator's requested bytes, which count what
// the tensors asked for, not the rounded blocks).
#include "autograd/functions_nn.h"
#include "models/transformer.h"
#include "tests/test_util.h"

using namespace mt;

namespace {

// The test model: 3 blocks of C 32, H 4 (D 8, the seed's head size), MLP 128, on B 2 x T 128.
struct Dims {
  int64_t B = 2, T = 128, C = 32, H = 4, F = 128, Fin = 5, L = 3;
  int64_t N() const { return B * T; }
};

ModelConfig config_of(const Dims& d) {
  ModelConfig cfg;
  cfg.n_features = static_cast<int>(d.Fin);
  cfg.d_model = static_cast<int>(d.C);
  cfg.n_heads = static_cast<int>(d.H);
  cfg.n_layers = static_cast<int>(d.L);
  cfg.d_ff = static_cast<int>(d.F);
  return cfg;  // attention dropout 0.05, as the seed trains
}

// S in float32. Per block, what each backward keeps (x is the block's input, the residual
// stream; h the stream after attention; u fc1's output):
//   norm1: x and rstd [N]          Wqkv: the recipe (norm1, x): nothing more
//   attention: q and k after RoPE, v, out and the row log-sum-exp [B, H, T]; v is a view of the
//     fused QKV output, so all [N, 3C] of it stays
//   out_proj: a view of attention's out: nothing more
//   norm2: h and rstd              fc1: the recipe (norm2, h): nothing more
//   gelu: u [N, F]                 fc2: the recipe (gelu, u): nothing more
// and for the model: fc_out keeps its input, the loss the prediction [N, Fin] (the target is
// the caller's, input_proj keeps the caller's input), and the loss itself.
int64_t saved_float32(const Dims& d) {
  const int64_t N = d.N(), C = d.C, f32 = 4;
  const int64_t block = f32 * (N * C + N                  // norm1
                               + N * 3 * C + 2 * N * C    // QKV (v's base), q and k
                               + N * C + d.B * d.H * d.T  // out, log-sum-exp
                               + N * C + N                // norm2
                               + N * d.F);                // gelu
  return d.L * block + f32 * (N * C + N * d.Fin + 1);
}

// S in bf16-mixed: each Linear runs a bf16 GEMM between casts. Per block:
//   norm1: x and rstd (float32)
//   attention: its bf16 q, k, v and out, and the log-sum-exp; out_proj keeps the recipe
//     cast(reshape(cast(out))), which is out again
//   norm2: h and rstd
//   gelu_mlp: fc1's bf16 pre-activation [N, F] (h = gelu(pre) is recomputed for dw2), and the
//     norm's output kept as its recipe
//   each Linear's bf16 weight copy, for dx
// and for the model: fc_out's bf16 input and weight copy, fc_out's bf16 output (the loss's
// float32 prediction is recomputed from it), input_proj's bf16 copy of the input (for dW), the
// loss. Block 0's x is input_proj's float32 output, kept as the bf16 GEMM output it widens from.
int64_t saved_bf16_mixed(const Dims& d) {
  const int64_t N = d.N(), C = d.C, F = d.F, f32 = 4, bf16 = 2;
  const int64_t block = f32 * (N * C + N) + bf16 * 4 * N * C + f32 * d.B * d.H * d.T +
                        f32 * (N * C + N) + bf16 * N * F +
                        bf16 * (3 * C * C + C * C + F * C + C * F);
  const int64_t head = bf16 * (N * C + d.Fin * C + N * d.Fin + N * d.Fin) + f32;
  return d.L * block + head - bf16 * N * C;
}

// The backward's largest working set, beside S.
//   float32, the MLP: the residual stream's pending gradient [N, C], the gradients of
//     h = gelu(pre) and of pre ([N, F] each).
//   bf16-mixed, the attention's way back to the fused QKV output (float32 outside the GEMMs and
//     the attention kernel): the stream's pending gradient [N, C]; q's, k's and v's float32
//     gradients [N, C], two still pending while the first is scattered; each select's backward
//     scatters into a zero [N, 3C] float32 tensor that the engine adds to QKV's pending gradient,
//     so the running sum, the new scatter and their sum coexist (3 x [N, 3C]).
int64_t working_set(const Dims& d, Precision p) {
  const int64_t N = d.N(), C = d.C, f32 = 4;
  if (p == Precision::Float32) return f32 * (N * C + 2 * N * d.F);
  return f32 * (N * C + 2 * N * C + 3 * 3 * N * C);
}

struct Measured {
  int64_t after_forward = 0;  // live bytes above the baseline once the loss exists
  int64_t peak = 0;           // the high-water mark above the baseline, forward and backward
};

// One forward and backward of the model on `device` with bytes counted by `live` and `peak`.
template <typename Live, typename Peak, typename Reset>
Measured measure(BTCTransformer& model, const Dims& d, Device device, Live live, Peak peak,
                 Reset reset) {
  Generator gen(3);
  const Tensor x = Tensor::randn({d.B, d.T, d.Fin}, gen, kFloat32, device);
  const Tensor target = Tensor::randn({d.B, d.T, d.Fin}, gen, kFloat32, device);
  model.zero_grad();
  const int64_t base = live();
  reset();
  Measured m;
  {
    Var loss = smooth_l1_loss(model(Var(x)), Var(target), 0.01f);
    m.after_forward = live() - base;
    loss.backward();
  }
  m.peak = peak() - base;
  return m;
}

// `tight`: the peak also reaches the working set (the CPU, whose ops make exactly the tensors
// derived above). The GPU's fused kernels make fewer (its peak on an H200: S + 192,700 B for
// this model in bf16-mixed): there only the bound from above is stated.
void check_bounds(const Measured& m, const Dims& d, Precision p, int64_t params_bytes, bool tight) {
  const int64_t S = p == Precision::BF16Mixed ? saved_bf16_mixed(d) : saved_float32(d);
  const int64_t W = working_set(d, p);
  INFO("after forward " << m.after_forward << " B, peak " << m.peak << " B; S = " << S
                        << ", working set " << W << ", parameter gradients " << params_bytes);
  CHECK(m.after_forward == S);
  // The working set coexists with all of S but the head's few tensors; at most all the
  // parameter gradients exist beside them.
  if (tight) CHECK(m.peak >= S + W - 4 * d.N() * d.C - 4 * d.N() * d.Fin);
  CHECK(m.peak <= S + W + params_bytes);
}

}  // namespace

TEST_SUITE("autograd") {
  TEST_CASE("memory: a Transformer's forward keeps its saved set, its backward a bounded peak") {
    const Dims d;
    Generator gen(1);
    BTCTransformer model(config_of(d), gen);
    const int64_t params_bytes = 4 * model.num_parameters();
    auto live = [] { return static_cast<int64_t>(host_memory_stats().allocated); };
    auto peak = [] { return static_cast<int64_t>(host_memory_stats().peak_allocated); };
    for (Precision p : {Precision::Float32, Precision::BF16Mixed}) {
      CAPTURE(std::string(precision_name(p)));
      model.set_model_precision(p);
      check_bounds(measure(model, d, Device::cpu(), live, peak, reset_host_peak_memory), d, p,
                   params_bytes, /*tight=*/true);
    }
  }

  CUDA_TEST_CASE("cuda: memory: a Transformer's forward keeps its saved set, a bounded peak") {
    const Dims d;
    Generator gen(1);
    BTCTransformer model(config_of(d), gen);
    model.to(Device::cuda());
    model.set_model_precision(Precision::BF16Mixed);
    const int64_t params_bytes = 4 * model.num_parameters();
    auto live = [] { return static_cast<int64_t>(cuda::memory_stats().requested); };
    auto peak = [] { return static_cast<int64_t>(cuda::memory_stats().peak_requested); };
    // A first pass, so that anything an op makes once and keeps is in the baseline.
    measure(model, d, Device::cuda(), live, peak, cuda::reset_peak_memory);
    check_bounds(measure(model, d, Device::cuda(), live, peak, cuda::reset_peak_memory), d,
                 Precision::BF16Mixed, params_bytes, /*tight=*/false);
  }
}
