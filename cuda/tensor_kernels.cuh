// Launchers for the kernels that tensor/ itself needs on the GPU: fill, dtype conversion and
// strided gather (contiguous() and copy_ of non-contiguous views). Declared without CUDA types so
// tensor/tensor.cpp can call them from plain C++ (only when built with MT_WITH_CUDA).
#pragma once

#include <cstdint>

namespace mt::cuda {

// Element types as the kernels know them (the same order as mt::DType).
enum class ElemType : uint8_t { F32, BF16, F64, I32, I64 };

// Sets n elements at dst to value (converted to the element type, bf16 rounded to nearest even).
void launch_fill(void* dst, ElemType type, int64_t n, double value);

// dst[i] = convert(src[i]) for n contiguous elements; bf16 rounds to nearest even as on the CPU.
void launch_convert(void* dst, ElemType dst_type, const void* src, ElemType src_type, int64_t n);

// Up to 8 dimensions: copies the strided view (sizes, src_strides in elements, src_offset) of src
// into the strided view (the same sizes, dst_strides, dst_offset) of dst, converting the element
// type. Broadcast sources have stride 0. Used for contiguous(), copy_ and casts of views.
constexpr int kMaxCopyDims = 8;
void launch_strided_copy(void* dst, ElemType dst_type, const int64_t* dst_strides,
                         int64_t dst_offset, const void* src, ElemType src_type,
                         const int64_t* src_strides, int64_t src_offset, const int64_t* sizes,
                         int ndim);

}  // namespace mt::cuda
