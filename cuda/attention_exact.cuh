// Launchers for the exact-precision attention (cuda/attention_exact.cu): float32 and float64
// inputs, computed in float64, the same function as the CPU reference (ops/attention.cpp). The
// bf16/fp16 inputs go to FlashAttention (cuda/flash_attention.cuh) instead.
//
// Layout [B, T, H, D] for q, k, v, out and dout, read through their batch/time/head strides,
// and for dq, dk, dv, written through theirs (the head dim has stride 1 in all). lse is
// [B, H, T] contiguous,
// in the inputs' type (float32 for float32, float64 for float64), as on the CPU.
#pragma once

#include <cstdint>

#include "cuda/flash_attention.cuh"  // AttentionArgs, AttnStrides

namespace mt::cuda {

enum class ExactElem : uint8_t { F32, F64 };

// The largest head dim: 32 lanes a row, up to 4 head-dim elements a lane.
constexpr int kExactAttentionMaxHeadDim = 128;

struct ExactAttentionParams : AttentionArgs {  // 1 <= D <= kExactAttentionMaxHeadDim
  ExactElem elem = ExactElem::F32;
  void* lse = nullptr;      // [B, H, T] of elem's type; forward: written; backward: read
  double* delta = nullptr;  // backward workspace [B, H, T]: rowsum(dout * out), in float64
};

// out, lse <- attention(q, k, v).
void exact_attention_forward(const ExactAttentionParams& p);
// dq, dk, dv <- the gradients, recomputing the probabilities from q, k, v and lse. Deterministic
// (every gradient element is summed by one thread group in a fixed order; no atomics).
void exact_attention_backward(const ExactAttentionParams& p);

}  // namespace mt::cuda
