// Internal to ops/: the one loop every elementwise CPU op runs on, over N operands that share a
// (broadcast) shape but each have their own strides.
//
// Why a plan: a broadcast add of x[B, T, C] and bias[C] is, after merging the dims whose layouts
// line up, a loop over B*T rows of C elements where every operand advances by 0 or 1 per element,
// which the compiler vectorizes. The plan merges adjacent dims when every operand's
// stride[d] == stride[d + 1] * size[d + 1] (so a contiguous tensor becomes one flat row), drops
// size-1 dims, and hands the body one innermost row at a time with its start offsets.
#pragma once

#include <array>
#include <cstdint>

#include "tensor/tensor.h"

namespace mt::ops::detail {

// Below this many elements a loop runs on one thread: an OpenMP fork/join costs a few
// microseconds, about what 32k float adds take on one core.
constexpr int64_t kParallelGrain = 32768;

template <int N>
struct LoopPlan {
  Shape sizes;                   // merged sizes, innermost last; never empty
  std::array<Shape, N> strides;  // per operand, the element stride of each merged dim
};

template <int N>
LoopPlan<N> make_loop_plan(const Shape& shape, const std::array<Shape, N>& strides) {
  LoopPlan<N> plan;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;  // a size-1 dim never moves any pointer
    bool merge = !plan.sizes.empty();
    for (int k = 0; k < N && merge; ++k) {
      merge = plan.strides[k].back() == strides[k][d] * shape[d];
    }
    if (merge) {
      plan.sizes.back() *= shape[d];
      for (int k = 0; k < N; ++k) plan.strides[k].back() = strides[k][d];
    } else {
      plan.sizes.push_back(shape[d]);
      for (int k = 0; k < N; ++k) plan.strides[k].push_back(strides[k][d]);
    }
  }
  if (plan.sizes.empty()) {  // a scalar or all-ones shape: one row of one element
    plan.sizes.push_back(1);
    for (int k = 0; k < N; ++k) plan.strides[k].push_back(0);
  }
  return plan;
}

// Calls body(n, offsets, inner_strides) once per piece of an innermost row: n elements, operand
// k starting at element offsets[k] and advancing by inner_strides[k]. Rows are cut into pieces
// of at most kRowPiece elements so that one long contiguous row (a flat tensor) still spreads
// over all threads. Pieces run in parallel when the loop is large; the body must only write
// memory that belongs to its piece.
constexpr int64_t kRowPiece = 16384;

template <int N, typename Body>
void for_each_row(const LoopPlan<N>& plan, Body&& body) {
  const int outer_dims = static_cast<int>(plan.sizes.size()) - 1;
  const int64_t inner = plan.sizes.back();
  int64_t rows = 1;
  for (int d = 0; d < outer_dims; ++d) rows *= plan.sizes[d];
  if (rows == 0 || inner == 0) return;
  std::array<int64_t, N> inner_strides;
  for (int k = 0; k < N; ++k) inner_strides[k] = plan.strides[k].back();
  const int64_t pieces = (inner + kRowPiece - 1) / kRowPiece;

#pragma omp parallel for schedule(static) if (rows * inner >= kParallelGrain && rows * pieces > 1)
  for (int64_t task = 0; task < rows * pieces; ++task) {
    const int64_t piece = task % pieces;
    std::array<int64_t, N> offsets{};
    int64_t rest = task / pieces;
    for (int d = outer_dims - 1; d >= 0; --d) {
      const int64_t i = rest % plan.sizes[d];
      rest /= plan.sizes[d];
      for (int k = 0; k < N; ++k) offsets[k] += i * plan.strides[k][d];
    }
    const int64_t start = piece * kRowPiece;
    for (int k = 0; k < N; ++k) offsets[k] += start * inner_strides[k];
    const int64_t n = inner - start < kRowPiece ? inner - start : kRowPiece;
    body(n, offsets, inner_strides);
  }
}

}  // namespace mt::ops::detail
