// Copies between layouts, dtypes and devices; fill; host access.
//
// Everything funnels into copy_(src): the destination's layout is kept, the source is broadcast
// to it, and element types are converted (bf16 rounds to nearest even). On the CPU a strided
// loop does the work; on the GPU one strided-copy kernel (cuda/tensor_kernels.cuh). A copy that
// crosses devices first makes the source dense in the destination's dtype on its own side, then
// moves bytes, so the PCIe transfer is always one contiguous block.
#include <cstring>

#include "cuda/runtime.h"
#include "cuda/tensor_kernels.cuh"
#include "tensor/tensor.h"

namespace mt {

namespace {

template <typename To, typename From>
inline To convert_value(From v) {
  if constexpr (std::is_same_v<To, bf16>) {
    return bf16(static_cast<float>(v));
  } else if constexpr (std::is_same_v<From, bf16>) {
    return static_cast<To>(static_cast<float>(v));
  } else {
    return static_cast<To>(v);
  }
}

// Calls fn(dst_offset, src_offset) for every element of `shape`, in row-major order.
template <typename Fn>
void for_each_offset(const Shape& shape, const Shape& dst_strides, const Shape& src_strides,
                     Fn&& fn) {
  const int ndim = static_cast<int>(shape.size());
  const int64_t n = shape_numel(shape);
  if (n == 0) return;
  std::vector<int64_t> index(ndim, 0);
  int64_t dst = 0, src = 0;
  for (int64_t i = 0; i < n; ++i) {
    fn(dst, src);
    for (int d = ndim - 1; d >= 0; --d) {
      if (++index[d] < shape[d]) {
        dst += dst_strides[d];
        src += src_strides[d];
        break;
      }
      dst -= dst_strides[d] * (shape[d] - 1);
      src -= src_strides[d] * (shape[d] - 1);
      index[d] = 0;
    }
  }
}

void copy_cpu(const Tensor& dst, const Tensor& src) {
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous() &&
      dst.shape() == src.shape()) {
    std::memcpy(dst.raw_data(), src.raw_data(), dst.nbytes());
    return;
  }
  MT_DISPATCH_ALL(dst.dtype(), "copy_", [&] {
    using dst_t = scalar_t;
    dst_t* out = static_cast<dst_t*>(dst.raw_data());
    MT_DISPATCH_ALL(src.dtype(), "copy_", [&] {
      const scalar_t* in = static_cast<const scalar_t*>(src.raw_data());
      for_each_offset(dst.shape(), dst.strides(), src.strides(),
                      [&](int64_t o, int64_t i) { out[o] = convert_value<dst_t>(in[i]); });
    });
  });
}

#ifdef MT_WITH_CUDA
cuda::ElemType elem_type(DType dtype) { return static_cast<cuda::ElemType>(dtype); }

void copy_cuda_to_cuda(const Tensor& dst, const Tensor& src) {
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous() &&
      dst.shape() == src.shape()) {
    cuda::copy_device_to_device(dst.raw_data(), src.raw_data(), dst.nbytes());
    return;
  }
  CHECK(dst.dim() <= cuda::kMaxCopyDims, "copy_: at most {} dims on the GPU, got {}",
        cuda::kMaxCopyDims, dst.describe());
  // The kernel takes base pointers and element offsets.
  cuda::launch_strided_copy(dst.storage()->data(), elem_type(dst.dtype()), dst.strides().data(),
                            dst.offset(), src.storage()->data(), elem_type(src.dtype()),
                            src.strides().data(), src.offset(), dst.shape().data(), dst.dim());
}
#endif

// Copies src (already broadcast to dst's shape) into dst.
void copy_any(const Tensor& dst, const Tensor& src) {
  if (dst.device().is_cpu() && src.device().is_cpu()) return copy_cpu(dst, src);
#ifdef MT_WITH_CUDA
  if (dst.is_cuda() && src.is_cuda()) return copy_cuda_to_cuda(dst, src);
  if (dst.is_cuda()) {  // host -> device: dense in dst's dtype on the host, one upload
    Tensor staged = src;
    if (!(src.dtype() == dst.dtype() && src.is_contiguous() && src.shape() == dst.shape())) {
      staged = Tensor::empty(dst.shape(), dst.dtype());
      copy_cpu(staged, src);
    }
    if (dst.is_contiguous()) {
      cuda::copy_host_to_device(dst.raw_data(), staged.raw_data(), dst.nbytes());
    } else {
      Tensor on_device = Tensor::empty(dst.shape(), dst.dtype(), dst.device());
      cuda::copy_host_to_device(on_device.raw_data(), staged.raw_data(), dst.nbytes());
      copy_cuda_to_cuda(dst, on_device);
    }
    return;
  }
  // device -> host: dense in dst's dtype on the device, one download
  Tensor dense = src;
  if (!(src.is_contiguous() && src.dtype() == dst.dtype() && src.shape() == dst.shape())) {
    dense = Tensor::empty(dst.shape(), dst.dtype(), src.device());
    copy_cuda_to_cuda(dense, src);
  }
  if (dst.is_contiguous()) {
    cuda::copy_device_to_host(dst.raw_data(), dense.raw_data(), dst.nbytes());
  } else {
    Tensor host = Tensor::empty(dst.shape(), dst.dtype());
    cuda::copy_device_to_host(host.raw_data(), dense.raw_data(), dst.nbytes());
    copy_cpu(dst, host);
  }
#else
  FAIL("copy_: {} -> {} needs CUDA, and this build has none", src.describe(), dst.describe());
#endif
}

}  // namespace

Tensor& Tensor::copy_(const Tensor& src) {
  CHECK(defined() && src.defined(), "copy_: undefined tensor");
  Tensor broadcast = src.shape() == shape_ ? src : src.expand(shape_);
  copy_any(*this, broadcast);
  return *this;
}

Tensor& Tensor::fill_(double value) {
  CHECK(defined(), "fill_: undefined tensor");
  if (numel() == 0) return *this;
  if (device().is_cpu()) {
    MT_DISPATCH_ALL(dtype_, "fill_", [&] {
      scalar_t* out = static_cast<scalar_t*>(raw_data());
      const scalar_t v = convert_value<scalar_t>(value);
      Shape zero(shape_.size(), 0);
      for_each_offset(shape_, strides_, zero, [&](int64_t o, int64_t) { out[o] = v; });
    });
    return *this;
  }
#ifdef MT_WITH_CUDA
  if (is_contiguous()) {
    cuda::launch_fill(raw_data(), elem_type(dtype_), numel(), value);
  } else {
    Tensor dense = empty(shape_, dtype_, device());
    cuda::launch_fill(dense.raw_data(), elem_type(dtype_), numel(), value);
    copy_cuda_to_cuda(*this, dense);
  }
#endif
  return *this;
}

Tensor Tensor::clone() const {
  CHECK(defined(), "clone: undefined tensor");
  Tensor out = empty(shape_, dtype_, device());
  copy_any(out, *this);
  return out;
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::to(Device target) const {
  CHECK(defined(), "to: undefined tensor");
  if (device() == target) return *this;
  Tensor out = empty(shape_, dtype_, target);
  copy_any(out, *this);
  return out;
}

Tensor Tensor::to(DType target) const {
  CHECK(defined(), "to: undefined tensor");
  if (dtype_ == target) return *this;
  Tensor out = empty(shape_, target, device());
  copy_any(out, *this);
  return out;
}

double Tensor::item() const {
  CHECK(defined() && numel() == 1, "item: expected a one-element tensor, got {}", describe());
  return to_vector<double>()[0];
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  CHECK(defined(), "to_vector: undefined tensor");
  Tensor host = empty(shape_, dtype_of<T>::value);
  copy_any(host, *this);
  std::vector<T> out(static_cast<size_t>(numel()));
  if (!out.empty()) std::memcpy(out.data(), host.raw_data(), out.size() * sizeof(T));
  return out;
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<bf16> Tensor::to_vector<bf16>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;

}  // namespace mt
