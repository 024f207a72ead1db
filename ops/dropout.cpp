#include "ops/dropout.h"

#include <type_traits>

#include "base/compute_type.h"
#include "base/philox.h"
#include "cuda/dropout.cuh"
#include "cuda/graph.h"
#include "ops/cuda_dispatch.h"

namespace mt::ops {
namespace {

// Element i of the draw (seed, stream) survives iff its uniform is >= p. This one line is the
// contract the CUDA kernel reproduces bit for bit.
inline bool kept(uint64_t seed, uint64_t stream, int64_t i, float p) {
  return philox_uniform_at(seed, stream, static_cast<uint64_t>(i)) >= p;
}

// y = keep ? x * scale : 0. Each iteration computes its own Philox block (4 outputs, one used):
// simple, and any thread may take any element.
template <typename scalar_t>
void dropout_cpu(const Tensor& x, Tensor& y, float p, uint64_t seed, uint64_t stream) {
  using acc = compute_t<scalar_t>;
  const acc scale = p >= 1.0f ? acc(0) : acc(1) / (acc(1) - static_cast<acc>(p));
  const scalar_t* xp = x.data<scalar_t>();
  scalar_t* yp = y.data<scalar_t>();
  const int64_t n = x.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    yp[i] =
        static_cast<scalar_t>(kept(seed, stream, i, p) ? static_cast<acc>(xp[i]) * scale : acc(0));
  }
}

#ifdef MT_WITH_CUDA
// The kernel draws the same mask from (seed, stream) as kept() above.
Tensor dropout_cuda(const Tensor& x_in, float p, uint64_t seed, uint64_t stream) {
  // Its stream is a launch argument: a CUDA graph would replay the captured mask every time.
  CHECK(!cuda::capturing() || p == 0.0f || p == 1.0f,
        "dropout: not supported inside a CUDA graph capture (every replay would draw the same "
        "mask); the attention's dropout is (ops::AttentionOptions::offset_base)");
  const Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  cuda::launch_dropout(to_elem_type(x.dtype()), y.raw_data(), x.raw_data(), x.numel(), p, seed,
                       stream);
  return y;
}
#endif  // MT_WITH_CUDA

Tensor dropout_impl(const Tensor& x_in, float p, uint64_t seed, uint64_t stream, const char* op) {
  CHECK(p >= 0.0f && p <= 1.0f, "{}: p must be in [0, 1], got {}", op, p);
  CHECK(is_floating(x_in.dtype()), "{}: expected a floating tensor, got {}", op, x_in.describe());
  MT_RETURN_IF_CUDA(x_in.is_cuda(), dropout_cuda(x_in, p, seed, stream));
  const Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  MT_DISPATCH_FLOAT(x.dtype(), op, [&] { dropout_cpu<scalar_t>(x, y, p, seed, stream); });
  return y;
}

}  // namespace

Tensor dropout_forward(const Tensor& x, float p, uint64_t seed, uint64_t stream) {
  return dropout_impl(x, p, seed, stream, "dropout_forward");
}

// Forward: y = x * keep * scale, linear in x with a diagonal Jacobian, so dx = dy * keep * scale
// with the regenerated mask.
Tensor dropout_backward(const Tensor& dy, float p, uint64_t seed, uint64_t stream) {
  return dropout_impl(dy, p, seed, stream, "dropout_backward");
}

Tensor dropout_mask(const Shape& shape, float p, uint64_t seed, uint64_t stream) {
  CHECK(p >= 0.0f && p <= 1.0f, "dropout_mask: p must be in [0, 1], got {}", p);
  Tensor mask = Tensor::empty(shape, kFloat32);
  float* mp = mask.data<float>();
  const int64_t n = mask.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) mp[i] = kept(seed, stream, i, p) ? 1.0f : 0.0f;
  return mask;
}

}  // namespace mt::ops
