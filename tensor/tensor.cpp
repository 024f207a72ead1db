// Tensor metadata and views. Copies and fills live in tensor_copy.cpp, factories in
// tensor_factory.cpp, printing in tensor_print.cpp.
#include "tensor/tensor.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <numeric>

#include "cuda/runtime.h"

namespace mt {

// ---- shapes --------------------------------------------------------------------------------

std::string shape_str(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t running = 1;
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    strides[i] = running;
    running *= std::max<int64_t>(shape[i], 1);
  }
  return strides;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    // Align from the right, as numpy does.
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    CHECK(da == db || da == 1 || db == 1, "{}: shapes {} and {} cannot be broadcast together", op,
          shape_str(a), shape_str(b));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// ---- storage -------------------------------------------------------------------------------

namespace {
// 64-byte alignment: a cache line, and what AVX-512 loads like; aligned_alloc wants a multiple.
constexpr size_t kHostAlignment = 64;

// Atomics: data-parallel tests run their ranks as threads of one process.
std::atomic<size_t> g_host_allocated{0}, g_host_peak{0}, g_host_allocs{0};

void count_host_alloc(size_t nbytes) {
  const size_t now = g_host_allocated.fetch_add(nbytes) + nbytes;
  g_host_allocs.fetch_add(1);
  size_t peak = g_host_peak.load();
  while (now > peak && !g_host_peak.compare_exchange_weak(peak, now)) {
  }
}
}  // namespace

HostMemoryStats host_memory_stats() {
  HostMemoryStats s;
  s.allocated = g_host_allocated.load();
  s.peak_allocated = g_host_peak.load();
  s.num_allocs = g_host_allocs.load();
  return s;
}

void reset_host_peak_memory() { g_host_peak.store(g_host_allocated.load()); }

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  const size_t request = std::max<size_t>(nbytes, 1);
  if (device.is_cuda()) {
    data_ = cuda::allocate(request);
  } else {
    const size_t rounded = (request + kHostAlignment - 1) / kHostAlignment * kHostAlignment;
    data_ = std::aligned_alloc(kHostAlignment, rounded);
    CHECK(data_ != nullptr, "out of host memory allocating {} bytes", nbytes);
    count_host_alloc(nbytes_);
  }
}

Storage::~Storage() {
  if (device_.is_cuda()) {
    cuda::release(data_);
  } else {
    std::free(data_);
    g_host_allocated.fetch_sub(nbytes_);
  }
}

// ---- metadata ------------------------------------------------------------------------------

namespace {
int wrap_dim(int dim, int ndim, const char* op) {
  const int bound = std::max(ndim, 1);
  CHECK(dim >= -bound && dim < bound, "{}: dim {} out of range for a {}-dim tensor", op, dim, ndim);
  return dim < 0 ? dim + bound : dim;
}
}  // namespace

Tensor Tensor::make_view(std::shared_ptr<Storage> storage, Shape shape, Shape strides,
                         int64_t offset, DType dtype) {
  CHECK(shape.size() == strides.size(), "make_view: {} sizes but {} strides", shape.size(),
        strides.size());
  Tensor t;
  t.storage_ = std::move(storage);
  t.shape_ = std::move(shape);
  t.strides_ = std::move(strides);
  t.offset_ = offset;
  t.dtype_ = dtype;
  return t;
}

int64_t Tensor::size(int d) const { return shape_[wrap_dim(d, dim(), "size")]; }
int64_t Tensor::stride(int d) const { return strides_[wrap_dim(d, dim(), "stride")]; }
int64_t Tensor::numel() const { return shape_numel(shape_); }

Device Tensor::device() const {
  CHECK(defined(), "device(): the tensor is undefined");
  return storage_->device();
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int i = dim() - 1; i >= 0; --i) {
    if (shape_[i] != 1 && strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined tensor";
  return fmt::format("{}{} {}", dtype_name(dtype_), shape_str(shape_), device().str());
}

void* Tensor::raw_data() const {
  CHECK(defined(), "data(): the tensor is undefined");
  return static_cast<char*>(storage_->data()) + offset_ * static_cast<int64_t>(dtype_size(dtype_));
}

template <typename T>
T* Tensor::data() const {
  CHECK(dtype_of<T>::value == dtype_, "data<{}>(): the tensor is {}",
        dtype_name(dtype_of<T>::value), describe());
  return static_cast<T*>(raw_data());
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template bf16* Tensor::data<bf16>() const;
template int32_t* Tensor::data<int32_t>() const;
template int64_t* Tensor::data<int64_t>() const;

// ---- views ---------------------------------------------------------------------------------

namespace {
Shape infer_shape(const Shape& requested, int64_t numel, const char* op) {
  Shape shape = requested;
  int infer_at = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      CHECK(infer_at < 0, "{}: only one dimension can be -1, got {}", op, shape_str(requested));
      infer_at = static_cast<int>(i);
    } else {
      CHECK(shape[i] >= 0, "{}: invalid size in {}", op, shape_str(requested));
      known *= shape[i];
    }
  }
  if (infer_at >= 0) {
    CHECK(known != 0 && numel % known == 0, "{}: cannot infer -1 in {} for {} elements", op,
          shape_str(requested), numel);
    shape[infer_at] = numel / known;
  }
  CHECK(shape_numel(shape) == numel, "{}: shape {} is invalid for a tensor of {} elements", op,
        shape_str(requested), numel);
  return shape;
}
}  // namespace

Tensor Tensor::view(const Shape& shape) const {
  Shape target = infer_shape(shape, numel(), "view");
  CHECK(is_contiguous(), "view: {} is not contiguous; use reshape() or contiguous() first",
        describe());
  return make_view(storage_, target, contiguous_strides(target), offset_, dtype_);
}

Tensor Tensor::reshape(const Shape& shape) const {
  Shape target = infer_shape(shape, numel(), "reshape");
  if (is_contiguous())
    return make_view(storage_, target, contiguous_strides(target), offset_, dtype_);
  return contiguous().view(target);
}

Tensor Tensor::permute(const std::vector<int>& dims) const {
  CHECK(static_cast<int>(dims.size()) == dim(), "permute: {} dims given for {}", dims.size(),
        describe());
  Shape shape(dim()), strides(dim());
  std::vector<bool> seen(dim(), false);
  for (int i = 0; i < dim(); ++i) {
    int d = wrap_dim(dims[i], dim(), "permute");
    CHECK(!seen[d], "permute: dim {} repeated in ({})", d, fmt::join(dims, ", "));
    seen[d] = true;
    shape[i] = shape_[d];
    strides[i] = strides_[d];
  }
  return make_view(storage_, shape, strides, offset_, dtype_);
}

Tensor Tensor::transpose(int dim0, int dim1) const {
  std::vector<int> order(dim());
  std::iota(order.begin(), order.end(), 0);
  std::swap(order[wrap_dim(dim0, dim(), "transpose")], order[wrap_dim(dim1, dim(), "transpose")]);
  return permute(order);
}

Tensor Tensor::narrow(int d, int64_t start, int64_t length) const {
  d = wrap_dim(d, dim(), "narrow");
  CHECK(start >= 0 && length >= 0 && start + length <= shape_[d],
        "narrow: [{}, {}) is out of range for dim {} of {}", start, start + length, d, describe());
  Shape shape = shape_;
  shape[d] = length;
  return make_view(storage_, shape, strides_, offset_ + start * strides_[d], dtype_);
}

Tensor Tensor::slice(int d, int64_t start, int64_t end, int64_t step) const {
  d = wrap_dim(d, dim(), "slice");
  CHECK(step > 0, "slice: step must be positive, got {}", step);
  const int64_t n = shape_[d];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape shape = shape_, strides = strides_;
  shape[d] = (end - start + step - 1) / step;
  strides[d] = strides_[d] * step;
  return make_view(storage_, shape, strides, offset_ + start * strides_[d], dtype_);
}

Tensor Tensor::select(int d, int64_t index) const {
  d = wrap_dim(d, dim(), "select");
  if (index < 0) index += shape_[d];
  CHECK(index >= 0 && index < shape_[d], "select: index {} out of range for dim {} of {}", index, d,
        describe());
  Shape shape = shape_, strides = strides_;
  shape.erase(shape.begin() + d);
  strides.erase(strides.begin() + d);
  return make_view(storage_, shape, strides, offset_ + index * strides_[d], dtype_);
}

Tensor Tensor::expand(const Shape& target) const {
  CHECK(target.size() >= shape_.size(), "expand: cannot expand {} to fewer dims {}", describe(),
        shape_str(target));
  const size_t lead = target.size() - shape_.size();
  Shape shape(target.size()), strides(target.size());
  for (size_t i = 0; i < target.size(); ++i) {
    if (i < lead) {
      CHECK(target[i] >= 0, "expand: new leading dim can't be {}", target[i]);
      shape[i] = target[i];
      strides[i] = 0;
      continue;
    }
    const int64_t have = shape_[i - lead];
    const int64_t want = target[i] == -1 ? have : target[i];
    CHECK(have == want || have == 1, "expand: cannot expand {} to {}", describe(),
          shape_str(target));
    shape[i] = want;
    strides[i] = (have == want) ? strides_[i - lead] : 0;
  }
  return make_view(storage_, shape, strides, offset_, dtype_);
}

Tensor Tensor::unsqueeze(int d) const {
  CHECK(d >= -(dim() + 1) && d <= dim(), "unsqueeze: dim {} out of range for {}", d, describe());
  if (d < 0) d += dim() + 1;
  Shape shape = shape_, strides = strides_;
  const int64_t stride = d < dim() ? strides_[d] * shape_[d] : 1;
  shape.insert(shape.begin() + d, 1);
  strides.insert(strides.begin() + d, stride);
  return make_view(storage_, shape, strides, offset_, dtype_);
}

Tensor Tensor::squeeze(int d) const {
  d = wrap_dim(d, dim(), "squeeze");
  CHECK(shape_[d] == 1, "squeeze: dim {} of {} has size {}, not 1", d, describe(), shape_[d]);
  return select(d, 0);
}

}  // namespace mt
