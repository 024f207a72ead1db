// Gathering a batch of windows from a series that lives on the GPU.
//
//   out[b, t, f] = series[(starts[b] + t) * F + f]      b < B, t < T, f < F
//
// The series ([N, F] float32) and the start rows (int64, one per window) are device memory
// uploaded once (the series) and once per epoch (the starts), so a training step costs one
// kernel and no host-to-device copy.
#pragma once

#include <cstdint>

namespace mt::cuda {

void launch_gather_windows(float* out /*[B,T,F]*/, const float* series /*[N,F]*/,
                           const int64_t* starts /*[B]*/, int64_t batch, int64_t window,
                           int64_t features);

}  // namespace mt::cuda
