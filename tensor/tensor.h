// Tensor: an n-dimensional strided view of a ref-counted block of memory on one device.
//
// The layout is PyTorch's: element (i0, i1, ...) lives at
//     data + (offset + i0 * strides[0] + i1 * strides[1] + ...) * dtype_size
// so reshape of a contiguous tensor, permute, transpose, narrow and expand are views that share
// the storage and only rewrite shape, strides and offset. Strides and offset count elements.
// expand gives stride 0 to broadcast dimensions, which is why kernels read through strides.
//
// A Tensor is a cheap handle (copying it copies a shared_ptr); use clone() for a deep copy.
// Shapes are int64 as in PyTorch; a 0-dim tensor (shape {}) holds one scalar.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "tensor/dtype.h"

namespace mt {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& shape);  // "[2, 3, 4]"
int64_t shape_numel(const Shape& shape);
Shape contiguous_strides(const Shape& shape);

// Memory owned by one allocation on one device; freed (or returned to the CUDA caching
// allocator) when the last Tensor that views it goes away.
class Storage {
 public:
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
};

// Host tensor storage in bytes (requested sizes, as cuda::MemoryStats counts device bytes):
// live now, and the high-water mark since the last reset. Tests state memory bounds with it.
struct HostMemoryStats {
  size_t allocated = 0;       // bytes in live CPU storages
  size_t peak_allocated = 0;  // high-water mark of `allocated` since the last reset
  size_t num_allocs = 0;      // CPU storages made so far
};
HostMemoryStats host_memory_stats();
void reset_host_peak_memory();  // peak_allocated = allocated

class Generator;

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor: defined() is false

  // ---- factories -------------------------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = kFloat32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = kFloat32, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = kFloat32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = kFloat32,
                     Device device = Device::cpu());
  static Tensor scalar(double value, DType dtype = kFloat32, Device device = Device::cpu());
  // [start, end) in steps of `step`, as torch.arange.
  static Tensor arange(double start, double end, double step = 1.0, DType dtype = kFloat32,
                       Device device = Device::cpu());
  // Uniform in [low, high) and standard normal; the numbers depend only on the generator's
  // seed and offset, never on the device.
  static Tensor uniform(const Shape& shape, double low, double high, Generator& gen,
                        DType dtype = kFloat32, Device device = Device::cpu());
  static Tensor rand(const Shape& shape, Generator& gen, DType dtype = kFloat32,
                     Device device = Device::cpu());
  static Tensor randn(const Shape& shape, Generator& gen, DType dtype = kFloat32,
                      Device device = Device::cpu());
  // Copies host values into a new CPU tensor of the matching dtype; numel must match.
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape);
  static Tensor from_doubles(const std::vector<double>& values, const Shape& shape,
                             DType dtype = kFloat32);

  // ---- metadata --------------------------------------------------------------------------
  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t offset() const { return offset_; }
  int dim() const { return static_cast<int>(shape_.size()); }
  int64_t size(int dim) const;  // negative dims count from the end
  int64_t stride(int dim) const;
  int64_t numel() const;
  DType dtype() const { return dtype_; }
  Device device() const;
  bool is_cuda() const { return device().is_cuda(); }
  bool is_contiguous() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  // "float32[2, 3] cpu": for error messages.
  std::string describe() const;

  // Pointer to element (0, ..., 0). Typed access checks that T matches the dtype.
  void* raw_data() const;
  template <typename T>
  T* data() const;

  // ---- views (share storage) -------------------------------------------------------------
  // view: new shape over the same elements; requires a layout that allows it (contiguous).
  // One dim may be -1 and is inferred.
  Tensor view(const Shape& shape) const;
  // reshape: a view when possible, else a contiguous copy.
  Tensor reshape(const Shape& shape) const;
  Tensor permute(const std::vector<int>& dims) const;
  Tensor transpose(int dim0, int dim1) const;
  // Elements [start, start + length) along dim.
  Tensor narrow(int dim, int64_t start, int64_t length) const;
  // Python-style slice [start:end:step] along dim (negative start/end count from the end).
  Tensor slice(int dim, int64_t start, int64_t end, int64_t step = 1) const;
  // Drops dim by taking index i along it.
  Tensor select(int dim, int64_t index) const;
  // Broadcast to `shape` (size-1 dims and new leading dims get stride 0); -1 keeps a size.
  Tensor expand(const Shape& shape) const;
  Tensor unsqueeze(int dim) const;
  Tensor squeeze(int dim) const;
  Tensor flatten() const { return reshape({numel()}); }

  // ---- copies ----------------------------------------------------------------------------
  Tensor contiguous() const;       // itself when already contiguous
  Tensor clone() const;            // always a new contiguous storage
  Tensor to(Device device) const;  // itself when already there
  Tensor to(DType dtype) const;    // itself when already that dtype; rounds to nearest even
  Tensor cpu() const { return to(Device::cpu()); }
  Tensor cuda() const { return to(Device::cuda()); }
  // Copies src into this tensor's elements (same shape, or broadcastable to it), across
  // dtypes and devices.
  Tensor& copy_(const Tensor& src);
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }

  // ---- host access -----------------------------------------------------------------------
  // The value of a one-element tensor (synchronizes with the GPU).
  double item() const;
  // All elements in row-major order, converted to T (copies from the GPU when needed).
  template <typename T>
  std::vector<T> to_vector() const;
  // Values printed like PyTorch, long tensors abbreviated with "...".
  std::string to_string() const;

  // Used by ops: a tensor over existing storage with the given layout.
  static Tensor make_view(std::shared_ptr<Storage> storage, Shape shape, Shape strides,
                          int64_t offset, DType dtype);

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Shape strides_;
  int64_t offset_ = 0;
  DType dtype_ = kFloat32;
};

// Are the two shapes broadcast-compatible? The broadcast result shape (numpy rules), or an
// Error naming both shapes and `op`.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// Is t's element (i0, ..., in) stored at the same place as a row-major index would say?
// Used to decide when a raw-pointer loop may run straight over memory.

}  // namespace mt

// fmt support: fmt::format("{}", tensor) prints describe() and the values.
template <>
struct fmt::formatter<mt::Tensor> : fmt::formatter<std::string> {
  template <typename Ctx>
  auto format(const mt::Tensor& t, Ctx& ctx) const {
    return fmt::formatter<std::string>::format(t.to_string(), ctx);
  }
};
