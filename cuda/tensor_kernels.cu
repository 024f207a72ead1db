// Fill, dtype conversion and strided copy: the kernels tensor/ needs for contiguous(), copy_,
// to(dtype) and the factories on the GPU. One templated copy kernel serves all three copies.
#include "cuda/kernel_utils.cuh"
#include "cuda/tensor_kernels.cuh"

namespace mt::cuda {

namespace {

// A strided layout passed by value (8 dims x 3 arrays x 8 B = 192 B of kernel parameters).
struct CopyLayout {
  int64_t sizes[kMaxCopyDims];
  int64_t src_strides[kMaxCopyDims];
  int64_t dst_strides[kMaxCopyDims];
  int64_t src_offset;
  int64_t dst_offset;
  int ndim;
};

template <typename T>
__global__ void fill_kernel(T* dst, int64_t n, T value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    dst[i] = value;
  }
}

// Thread i handles the i-th element in row-major order of `sizes`. When both sides are dense
// (`contiguous`), the index is the offset itself and consecutive threads touch consecutive
// addresses; otherwise the index is decomposed into coordinates, last dimension fastest, so the
// destination (usually the contiguous side) stays coalesced.
template <typename Dst, typename Src>
__global__ void copy_kernel(Dst* dst, const Src* src, int64_t n, CopyLayout layout,
                            bool contiguous) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t src_index = layout.src_offset, dst_index = layout.dst_offset;
    if (contiguous) {
      src_index += i;
      dst_index += i;
    } else {
      int64_t rest = i;
      for (int d = layout.ndim - 1; d >= 0; --d) {
        const int64_t coord = rest % layout.sizes[d];
        rest /= layout.sizes[d];
        src_index += coord * layout.src_strides[d];
        dst_index += coord * layout.dst_strides[d];
      }
    }
    dst[dst_index] = convert_value<Dst>(src[src_index]);
  }
}

void copy_elements(void* dst, ElemType dst_type, const void* src, ElemType src_type, int64_t n,
                   const CopyLayout& layout, bool contiguous) {
  if (n == 0) return;
  dispatch_elem(dst_type, [&](auto dst_tag) {
    using Dst = typename decltype(dst_tag)::type;
    dispatch_elem(src_type, [&](auto src_tag) {
      using Src = typename decltype(src_tag)::type;
      copy_kernel<Dst, Src><<<grid_for(n), kThreads, 0, stream()>>>(
          static_cast<Dst*>(dst), static_cast<const Src*>(src), n, layout, contiguous);
      LAUNCH_CHECK();
    });
  });
}

}  // namespace

void launch_fill(void* dst, ElemType type, int64_t n, double value) {
  if (n == 0) return;
  NvtxRange range("fill");
  dispatch_elem(type, [&](auto tag) {
    using T = typename decltype(tag)::type;
    fill_kernel<T>
        <<<grid_for(n), kThreads, 0, stream()>>>(static_cast<T*>(dst), n, convert_value<T>(value));
    LAUNCH_CHECK();
  });
}

void launch_convert(void* dst, ElemType dst_type, const void* src, ElemType src_type, int64_t n) {
  NvtxRange range("convert");
  CopyLayout layout{};
  layout.ndim = 1;
  layout.sizes[0] = n;
  copy_elements(dst, dst_type, src, src_type, n, layout, true);
}

void launch_strided_copy(void* dst, ElemType dst_type, const int64_t* dst_strides,
                         int64_t dst_offset, const void* src, ElemType src_type,
                         const int64_t* src_strides, int64_t src_offset, const int64_t* sizes,
                         int ndim) {
  CHECK(ndim >= 0 && ndim <= kMaxCopyDims, "strided_copy: {} dims, at most {} supported", ndim,
        kMaxCopyDims);
  NvtxRange range("strided_copy");
  CopyLayout layout{};
  layout.ndim = ndim;
  layout.src_offset = src_offset;
  layout.dst_offset = dst_offset;
  int64_t n = 1;
  bool contiguous = true;
  int64_t expected = 1;  // the row-major stride dimension d would have
  for (int d = ndim - 1; d >= 0; --d) {
    layout.sizes[d] = sizes[d];
    layout.src_strides[d] = src_strides[d];
    layout.dst_strides[d] = dst_strides[d];
    n *= sizes[d];
    if (sizes[d] != 1 && (src_strides[d] != expected || dst_strides[d] != expected)) {
      contiguous = false;
    }
    expected *= sizes[d];
  }
  copy_elements(dst, dst_type, src, src_type, n, layout, contiguous);
}

}  // namespace mt::cuda
