// Launchers for the FlashAttention kernels (cuda/flash_attention_fwd.cu,
// cuda/flash_attention_bwd_q.cu): raw pointers, sizes and strides, no CUDA types, so that
// ops/attention.cpp calls them from plain C++.
//
// Layout [B, T, H, D] for every tensor; q, k, v, out, dout and the gradients dq, dk, dv may be
// strided views (the head dim contiguous, every stride and the base a multiple of 8 elements,
// i.e. 16-byte aligned rows): the model's q, k, v are views of one packed [B, T, 3, H, D]
// projection, and dq, dk, dv are written straight into the same views of one packed gradient.
// lse is [B, H, T] float32.
// docs/flash_attention.md explains the algorithm; cuda/README.md lists the kernel files.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "cuda/attention_dropout.h"

namespace mt::cuda {

enum class AttnElem : uint8_t { BF16, F16 };

// Element strides of a [B, T, H, D] view: batch, time, head (the head dim has stride 1).
struct AttnStrides {
  int64_t b = 0, t = 0, h = 0;
};

// What every CUDA attention path is given (FlashAttention here, the exact float32/float64
// kernels in cuda/attention_exact.cuh): the problem, the inputs, the output and, for the
// backward, the gradients. Each path adds its element type, lse and workspace.
struct AttentionArgs {
  int B = 0, T = 0, H = 0, D = 0;
  float scale = 0.0f;  // softmax scale (1/sqrt(D) by default)
  bool causal = false;
  // Dropout on the probabilities (cuda/attention_dropout.h); threshold 0 = none.
  uint64_t seed = 0, offset = 0;
  uint32_t dropout_threshold = 0;
  // Device memory or null: when set, the mask's stream is offset + *offset_base, read on the
  // device when the kernels run, so that each replay of a CUDA graph draws a new mask
  // (training/step_graph.h) while the launch parameters stay as captured.
  const uint64_t* offset_base = nullptr;

  const void *q = nullptr, *k = nullptr, *v = nullptr;
  AttnStrides q_strides, k_strides, v_strides;
  void* out = nullptr;  // forward: written; backward: read (the forward's output)
  AttnStrides out_strides;

  // Backward only.
  const void* dout = nullptr;
  AttnStrides dout_strides;
  void *dq = nullptr, *dk = nullptr, *dv = nullptr;
  // Set them even for contiguous gradients ({T H D, H D, D}): a zero stride is accepted only on
  // a dim of size 1 (the launchers check), so a caller that forgot them gets an error, not every
  // row written to one place.
  AttnStrides dq_strides, dk_strides, dv_strides;
};

// Whether the gradients' strides were set (see AttentionArgs): zero only on dims of size 1.
inline bool grad_strides_set(const AttentionArgs& p) {
  for (const AttnStrides* s : {&p.dq_strides, &p.dk_strides, &p.dv_strides}) {
    if ((s->b == 0 && p.B > 1) || (s->t == 0 && p.T > 1) || (s->h == 0 && p.H > 1)) return false;
  }
  return true;
}

struct FlashAttentionParams : AttentionArgs {
  AttnElem elem = AttnElem::BF16;  // D in {8, 16, 32, 64, 128}
  float* lse = nullptr;            // forward: written; backward: read
  // Backward workspace [2, B, H, T] float32: [0] = rowsum(dout * out), [1] = lse * log2(e) (the
  // backward kernels' exponent offset, precomputed once so that they can cp.async it).
  float* delta = nullptr;
  // Backward workspace [B, T, H, D] float32 for the single-pass backward: dQ is accumulated here
  // with atomic adds by the dK/dV kernel, then rounded into dq. nullptr selects the deterministic
  // backward (a second kernel sums each dQ row in a fixed order; slower, docs/benchmarks.md).
  float* dq_accum = nullptr;
  // Set by the launch (fa::launch_over_tiles) from seed and offset, not by callers: the dropout
  // mask's launch key (cuda/attention_dropout.h), one Philox4x32-10 call on the host; with an
  // offset_base, computed on the device instead by a one-thread kernel just before the launch
  // into dropout_key_words (4 words), which the kernels then read (fa::launch_key).
  DropoutKey dropout_key{};
  const uint32_t* dropout_key_words = nullptr;
};

// key[0..3] <- DropoutKey::of(seed, offset + *offset_base) on the compute stream: the launch
// key of a launch whose mask stream lives on the device (cuda/attention_dropout_key.cu).
void launch_dropout_key(uint32_t* key, uint64_t seed, uint64_t offset, const uint64_t* offset_base);

// out, lse <- attention(q, k, v).
void flash_attention_forward(const FlashAttentionParams& p);
// dq, dk, dv <- the gradients, recomputing the probabilities from q, k, v, lse. With p.dq_accum
// set, one pass computes every gradient and adds dQ atomically (the order of the float adds, and
// so the last bits of dq, can change from run to run). Without it the backward is deterministic:
// every gradient element is summed by one thread in a fixed order, so repeated runs give the same
// bits, at the price of recomputing the probabilities in a second kernel.
void flash_attention_backward(const FlashAttentionParams& p);

}  // namespace mt::cuda
