// The attention-dropout launch key computed on the device (cuda/flash_attention.cuh): for launches
// recorded in a CUDA graph, whose mask stream is a device-side base plus the launch's offset.
#include "cuda/attention_dropout.h"
#include "cuda/check.cuh"
#include "cuda/flash_attention.cuh"
#include "cuda/kernel_utils.cuh"

namespace mt::cuda {

namespace {

__global__ void dropout_key_kernel(uint32_t* key, uint64_t seed, uint64_t offset,
                                   const uint64_t* offset_base) {
  const DropoutKey k = DropoutKey::of(seed, offset + *offset_base);
  for (int i = 0; i < 4; ++i) key[i] = k.k[i];
}

}  // namespace

void launch_dropout_key(uint32_t* key, uint64_t seed, uint64_t offset,
                        const uint64_t* offset_base) {
  dropout_key_kernel<<<1, 1, 0, stream()>>>(key, seed, offset, offset_base);
  LAUNCH_CHECK();
}

}  // namespace mt::cuda
