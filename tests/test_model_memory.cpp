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
// stream; h the stream after attention):
//   norm1: x and rstd [N]          Wqkv: the recipe (norm1, x) for its input: nothing more
//   packed_attention: the rotated packed q, k, v [N, 3C], out [N, C] and the row log-sum-exp
//     [B, H, T]; out_proj reads out itself
//   norm2: h and rstd              gelu_mlp: the recipe (norm2, h) for its input and the
//     weights: nothing more (its backward runs fc1 again for the pre-activation)
// and for the model: fc_out keeps its input, the loss the prediction [N, Fin] (the target is
// the caller's, input_proj keeps the caller's input), and the loss itself.
int64_t saved_float32(const Dims& d) {
  const int64_t N = d.N(), C = d.C, f32 = 4;
  const int64_t block = f32 * (N * C + N                  // norm1
                               + N * 3 * C                // the packed q, k, v
                               + N * C + d.B * d.H * d.T  // out, log-sum-exp
                               + N * C + N);              // norm2
  return d.L * block + f32 * (N * C + N * d.Fin + 1);
}

// S in bf16-mixed: activations are bf16 end to end (the residual stream too), statistics
// float32. The Linears' bf16 weight copies are model state, made once per step after the
// optimizer (refresh_bf16_weights), and sit in the baseline like the parameters. Per block the
// same set as in float32: x [N, C] and rstd [N] (float32) for norm1 (for block 0 a plain
// RMSNorm, later the previous block's fused add_rmsnorm); the rotated packed q, k, v [N, 3C],
// out [N, C] and the log-sum-exp [B, H, T] (float32); h [N, C] and rstd for norm2; the norms'
// outputs as recipes. For the model: fc_out's input (the stream after the last block) [N, C],
// fc_out's bf16 output [N, Fin] (the loss's float32 prediction is recomputed from it),
// input_proj's bf16 copy of the input [N, Fin] for its dW, the loss.
int64_t saved_bf16_mixed(const Dims& d) {
  const int64_t N = d.N(), C = d.C, f32 = 4, bf16 = 2;
  const int64_t block = bf16 * (N * C + 3 * N * C + N * C + N * C) +  // x, q k v, out, h
                        f32 * (N + N + d.B * d.H * d.T);
  return d.L * block + bf16 * (N * C + 2 * N * d.Fin) + f32;
}

// The backward's largest working set, beside S: the MLP's, the same ops on the CPU and the GPU.
// Its backward holds the incoming gradient dy [N, C] (also the stream's pending one) and its
// recomputed input [N, C], runs fc1 again for the pre-activation pre [N, F] and h = gelu(pre)
// [N, F], forms dw2 from h, drops h, and then forms the hidden layer's gradient dh = dy . w2
// [N, F], turns it into dpre in place and drops pre: [N, C] twice and [N, F] twice. (dx [N, C]
// comes after pre is gone: three [N, C] and one [N, F], less.)
// (On the GPU the attention's is smaller: the stream's pending gradient and dout [N, C], the
// packed gradient [N, 3C], the float32 dQ accumulator [N, C] of the single-pass backward and its
// float32 workspace [2, B, H, T].)
int64_t working_set(const Dims& d, Precision p, Device device) {
  const int64_t N = d.N(), C = d.C, F = d.F, f32 = 4, bf16 = 2;
  if (p == Precision::Float32) return f32 * (2 * N * C + 2 * N * F);
  const int64_t mlp = bf16 * (2 * N * C + 2 * N * F);
  // The CPU's bf16 matmul widens its operands to float32 and rounds its float32 product
  // (ops/matmul.cpp): beside the bf16 tensors above, dy . w2 holds dy and the [N, F] product in
  // float32 for a moment.
  if (device.is_cpu()) return mlp + f32 * (N * C + N * F);
  const int64_t attention = bf16 * (2 * N * C + 3 * N * C) + f32 * (N * C + 2 * d.B * d.H * d.T);
  return std::max(attention, mlp);
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
  refresh_bf16_weights(model);  // model state, like the parameters: in the baseline
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

void check_bounds(const Measured& m, const Dims& d, Precision p, Device device,
                  int64_t params_bytes) {
  const int64_t S = p == Precision::BF16Mixed ? saved_bf16_mixed(d) : saved_float32(d);
  const int64_t W = working_set(d, p, device);
  // Besides the float32 parameter gradients, bf16-mixed makes each weight copy's bf16 gradient
  // before widening it into its master's: at most half as many bytes again.
  const int64_t grads = p == Precision::BF16Mixed ? params_bytes + params_bytes / 2 : params_bytes;
  INFO("after forward " << m.after_forward << " B, peak " << m.peak << " B; S = " << S
                        << ", working set " << W << ", parameter gradients " << grads);
  CHECK(m.after_forward == S);
  // The working set coexists with all of S but the head's few tensors, freed before it; at
  // most all the parameter gradients exist beside them.
  CHECK(m.peak >= S + W - 4 * d.N() * d.C - 4 * d.N() * d.Fin);
  CHECK(m.peak <= S + W + grads);
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
                   Device::cpu(), params_bytes);
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
                 Precision::BF16Mixed, Device::cuda(), params_bytes);
  }
}
