// Launchers for the exact-precision attention (cuda/attention_exact.cu): float32 and float64
// inputs, computed in float64, the same function as the CPU reference (ops/attention.cpp). The
// bf16/fp16 inputs go to FlashAttention (cuda/flash_attention.cuh) instead.
//
// Layout [B, T, H, D] for q, k, v, out and dout, read through their batch/time/head strides
// (the head dim has stride 1); dq, dk, dv are written contiguous. lse is [B, H, T] contiguous,
// in the inputs' type (float32 for float32, float64 for float64), as on the CPU.
#pragma once

#include <cstdint>

#include "cuda/flash_attention.cuh"  // AttnStrides

namespace mt::cuda {

enum class ExactElem : uint8_t { F32, F64 };

// The largest head dim: 32 lanes a row, up to 4 head-dim elements a lane.
constexpr int kExactAttentionMaxHeadDim = 128;

struct ExactAttentionParams {
  ExactElem elem = ExactElem::F32;
  int B = 0, T = 0, H = 0, D = 0;  // 1 <= D <= kExactAttentionMaxHeadDim
  float scale = 0.0f;              // softmax scale (the op passes 1/sqrt(D) by default)
  bool causal = false;
  // Dropout on the probabilities (cuda/attention_dropout.h); threshold 0 = none.
  uint64_t seed = 0, offset = 0;
  uint32_t dropout_threshold = 0;

  const void *q = nullptr, *k = nullptr, *v = nullptr;
  AttnStrides q_strides, k_strides, v_strides;
  void* out = nullptr;  // forward: written; backward: read (the forward's output)
  AttnStrides out_strides;
  void* lse = nullptr;  // [B, H, T] of elem's type; forward: written; backward: read

  // Backward only.
  const void* dout = nullptr;
  AttnStrides dout_strides;
  void *dq = nullptr, *dk = nullptr, *dv = nullptr;  // contiguous [B, T, H, D]
  double* delta = nullptr;  // workspace [B, H, T]: rowsum(dout * out), in float64
};

// out, lse <- attention(q, k, v).
void exact_attention_forward(const ExactAttentionParams& p);
// dq, dk, dv <- the gradients, recomputing the probabilities from q, k, v and lse. Deterministic
// (every gradient element is summed by one thread group in a fixed order; no atomics).
void exact_attention_backward(const ExactAttentionParams& p);

}  // namespace mt::cuda
