// Scaled-dot-product attention: softmax(scale * Q K^T + causal mask) V per batch and head.
//
// Layout: q, k, v and the output are [B, T, H, D] (time before heads), so that the fused QKV
// projection's output [B, T, 3, H, D] is read in place through strided views. The row
// log-sum-exp saved for backward is [B, H, T]: float32, or float64 for float64 inputs (so that
// float64 gradchecks stay exact).
//
// Three implementations of the same function:
//   - attention_naive_*: materializes the T x T scores; the readable definition, and (with
//     emulate_bf16) the "naive bf16 implementation" the CUDA kernel's error is measured against;
//   - the tiled CPU path of attention_forward/backward: FlashAttention's algorithm on the CPU,
//     O(T) extra memory, the same math and the same tile loops as the kernel;
//   - for CUDA tensors: the FlashAttention kernels (cuda/flash_attention_*.cu) for bf16, and the
//     exact kernels (cuda/attention_exact.cu, computed in float64) for float32 and float64, so
//     that a float32 model on the GPU computes attention in float32 as on the CPU.
// docs/flash_attention.md walks through the algorithm.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace mt::ops {

struct AttentionOptions {
  bool causal = false;
  float dropout_p = 0.0f;  // on the probabilities; quantized to 1/256 (cuda/attention_dropout.h)
  uint64_t seed = 0;       // dropout mask key
  uint64_t offset = 0;     // dropout mask stream (advance it per call)
  float scale = 0.0f;      // 0 means 1 / sqrt(D)
  // The bf16 CUDA backward adds dQ atomically (one pass over the scores) unless this is set;
  // then it sums every dQ row in a fixed order (a second pass, about 1.2x slower at D = 8), and
  // repeated runs give the same bits. The CPU and the float32/float64 kernels always do, and so
  // does D = 128, where the second pass is the faster way.
  bool deterministic = false;
  // CUDA only, device memory or null: when set, the mask stream is offset + *offset_base, read
  // on the device when the kernels run. A CUDA graph captured once then draws a new mask at each
  // replay (training/step_graph.h sets the base before each one).
  const uint64_t* offset_base = nullptr;
};

struct AttentionGrads {
  Tensor dq, dk, dv;  // [B, T, H, D] each, in the inputs' dtype (attention_backward: contiguous)
};

// The forward: out [B, T, H, D] in q's dtype; *lse (if not null) gets the row log-sum-exp
// [B, H, T] of the scaled, masked scores (before dropout).
Tensor attention_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                         const AttentionOptions& options, Tensor* lse);

// The backward from what the forward saved: out and lse are attention_forward's results for
// the same q, k, v and options; dout is the gradient of out.
AttentionGrads attention_backward(const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& out, const Tensor& lse, const Tensor& dout,
                                  const AttentionOptions& options);

// The same backward, writing into the given dq, dk, dv: [B, T, H, D] tensors of q's dtype and
// device in any layout (the model passes the q, k, v views of one packed [B, T, 3, H, D]
// gradient, so that no scatter or sum is needed). The CUDA kernels write them in place when the
// head dim is contiguous (and, for bf16, every stride and the offset are multiples of 8);
// anything else, and the CPU, goes through a contiguous gradient and a copy.
void attention_backward_into(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                             const Tensor& lse, const Tensor& dout, const AttentionOptions& options,
                             const AttentionGrads& grads);

// The naive CPU reference (float32 or float64; bf16 is computed in float32). With emulate_bf16
// every intermediate the kernel keeps in bf16 (Q K^T, the probabilities, P V, and in backward
// dP, dS and the three products) is rounded to bf16, as a naive bf16 implementation would.
Tensor attention_naive_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                               const AttentionOptions& options, bool emulate_bf16 = false);
AttentionGrads attention_naive_backward(const Tensor& q, const Tensor& k, const Tensor& v,
                                        const Tensor& dout, const AttentionOptions& options,
                                        bool emulate_bf16 = false);

// The scale actually used: options.scale, or 1 / sqrt(D) when it is 0.
float attention_scale(const AttentionOptions& options, int64_t head_dim);

}  // namespace mt::ops
