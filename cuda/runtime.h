// The device runtime as the rest of the framework sees it: plain C++ declarations with no CUDA
// header, so that tensor/ and ops/ compile the same with and without the CUDA toolkit.
//
// Built with CUDA (MT_WITH_CUDA defined by the Makefile when nvcc is found), these are
// implemented in cuda/runtime.cu over the CUDA runtime and the caching allocator. Built without
// it, cuda/runtime_stub.cpp reports that no GPU is available and throws on any device request.
// A CUDA build on a machine without a GPU behaves like the CPU-only build: available() is false.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace mt::cuda {

// True when the framework was built with CUDA and at least one GPU is visible.
bool available();
int device_count();
void set_device(int index);
int current_device();
std::string device_name(int index = 0);

// Raw device memory through the caching allocator (cuda/allocator.cuh has the details).
void* allocate(size_t nbytes);
void release(void* ptr);

// Copies on the framework's compute stream. `host` memory is pageable; the copy to the host
// waits for the stream, so its result can be read at once.
void copy_host_to_device(void* dst, const void* src, size_t nbytes);
void copy_device_to_host(void* dst, const void* src, size_t nbytes);
void copy_device_to_device(void* dst, const void* src, size_t nbytes);
void memset_zero(void* dst, size_t nbytes);

// Blocks the host until all work queued on the compute stream is done.
void synchronize();

// The compute stream as an opaque handle (a cudaStream_t inside cuda/).
void* stream_handle();

struct MemoryStats {
  size_t allocated = 0;       // bytes in live tensors (the blocks they hold)
  size_t reserved = 0;        // bytes held from cudaMalloc, live or cached
  size_t peak_allocated = 0;  // high-water mark of `allocated` since the last reset
  // The same two for the bytes the tensors asked for, before rounding to a bin or reusing a
  // larger cached block: what a memory bound derived from tensor sizes is compared with.
  size_t requested = 0;
  size_t peak_requested = 0;
  size_t num_device_mallocs = 0;  // cudaMalloc calls so far: steady state adds none
};
MemoryStats memory_stats();
void reset_peak_memory();
// Returns every cached, unused block to the driver.
void empty_cache();

}  // namespace mt::cuda
