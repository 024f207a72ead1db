// Elementwise kernels (see elementwise.cuh). One kernel per (dtype, arity); the op is a runtime
// switch that is uniform across the grid, so the branch costs nothing next to the memory traffic
// and CI compiles 9 kernels instead of one per (op, dtype) pair.
#include <cmath>

#include "cuda/elementwise.cuh"
#include "cuda/kernel_utils.cuh"

namespace mt::cuda {

namespace {

template <typename A>
__device__ __forceinline__ A apply_binary(BinaryKind op, A x, A y) {
  switch (op) {
    case BinaryKind::Add:
      return x + y;
    case BinaryKind::Sub:
      return x - y;
    case BinaryKind::Mul:
      return x * y;
    case BinaryKind::Div:
      return x / y;
    case BinaryKind::Pow:
      return pow(x, y);
    case BinaryKind::Max:
      return (isnan(x) || x > y) ? x : y;  // NaN wins, as torch.maximum
    case BinaryKind::Min:
      return (isnan(x) || x < y) ? x : y;
    case BinaryKind::Eq:
      return A(x == y);
    case BinaryKind::Gt:
      return A(x > y);
    case BinaryKind::Ge:
      return A(x >= y);
  }
  return x;
}

template <typename A>
__device__ __forceinline__ A apply_unary(UnaryKind op, A v, A p0, A p1) {
  switch (op) {
    case UnaryKind::Affine:
      return v * p0 + p1;
    case UnaryKind::RDiv:
      return p0 / v;
    case UnaryKind::PowScalar:
      return pow(v, p0);
    case UnaryKind::Clamp:
      return v < p0 ? p0 : (v > p1 ? p1 : v);  // NaN stays NaN
    case UnaryKind::InRange:
      return A(v >= p0 && v <= p1);
    case UnaryKind::Exp:
      return exp(v);
    case UnaryKind::Log:
      return log(v);
    case UnaryKind::Log1p:
      return log1p(v);
    case UnaryKind::Sqrt:
      return sqrt(v);
    case UnaryKind::Rsqrt:
      return A(1) / sqrt(v);  // not rsqrt(): it is 2 ulp, the CPU is exact
    case UnaryKind::Tanh:
      return tanh(v);
    case UnaryKind::Abs:
      return fabs(v);
    case UnaryKind::Sign:
      return A((v > A(0)) - (v < A(0)));
  }
  return v;
}

// Operand 0 of each indexer is the dense output.
template <typename T, typename Index>
__global__ void binary_kernel(BinaryKind op, T* out, const T* a, const T* b, int64_t n,
                              StridedIndexer<3> ix, bool dense) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    Index off[3] = {Index(i), Index(i), Index(i)};
    if (!dense) ix.offsets(Index(i), off);
    store(out, i, apply_binary(op, load(a, off[1]), load(b, off[2])));
  }
}

template <typename T, typename Index>
__global__ void unary_kernel(UnaryKind op, T* out, const T* x, int64_t n, StridedIndexer<2> ix,
                             bool dense, compute_t<T> p0, compute_t<T> p1) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    Index off[2] = {Index(i), Index(i)};
    if (!dense) ix.offsets(Index(i), off);
    store(out, i, apply_unary(op, load(x, off[1]), p0, p1));
  }
}

template <typename T, typename Index>
__global__ void where_kernel(T* out, const T* cond, const T* a, const T* b, int64_t n,
                             StridedIndexer<4> ix, bool dense) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    Index off[4] = {Index(i), Index(i), Index(i), Index(i)};
    if (!dense) ix.offsets(Index(i), off);
    out[i] = load(cond, off[1]) != compute_t<T>(0) ? a[off[2]] : b[off[3]];
  }
}

int64_t count(const int64_t* sizes, int ndim) {
  int64_t n = 1;
  for (int d = 0; d < ndim; ++d) n *= sizes[d];
  return n;
}

// Row-major strides of the dense output, for operand 0 of the indexers.
struct DenseStrides {
  int64_t s[kMaxCopyDims];
  DenseStrides(const int64_t* sizes, int ndim) {
    CHECK(ndim <= kMaxCopyDims, "cuda elementwise: {} dims, at most {}", ndim, kMaxCopyDims);
    int64_t stride = 1;
    for (int d = ndim - 1; d >= 0; --d) {
      s[d] = stride;
      stride *= sizes[d];
    }
  }
};

}  // namespace

void launch_binary(BinaryKind op, ElemType type, void* out, const int64_t* sizes, int ndim,
                   const void* a, const int64_t* a_strides, const void* b,
                   const int64_t* b_strides) {
  const int64_t n = count(sizes, ndim);
  if (n == 0) return;
  NvtxRange range("binary");
  DenseStrides o(sizes, ndim);
  const int64_t* strides[3] = {o.s, a_strides, b_strides};
  const auto ix = make_indexer<3>(sizes, ndim, strides);
  dispatch_float(type, "binary", [&](auto tag) {
    using T = typename decltype(tag)::type;
    auto kernel = ix.fits_32bit(n) ? binary_kernel<T, uint32_t> : binary_kernel<T, int64_t>;
    kernel<<<grid_for(n), kThreads, 0, stream()>>>(op, static_cast<T*>(out),
                                                   static_cast<const T*>(a),
                                                   static_cast<const T*>(b), n, ix, ix.dense());
    LAUNCH_CHECK();
  });
}

void launch_unary(UnaryKind op, ElemType type, void* out, const int64_t* sizes, int ndim,
                  const void* x, const int64_t* x_strides, double p0, double p1) {
  const int64_t n = count(sizes, ndim);
  if (n == 0) return;
  NvtxRange range("unary");
  DenseStrides o(sizes, ndim);
  const int64_t* strides[2] = {o.s, x_strides};
  const auto ix = make_indexer<2>(sizes, ndim, strides);
  dispatch_float(type, "unary", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = compute_t<T>;
    auto kernel = ix.fits_32bit(n) ? unary_kernel<T, uint32_t> : unary_kernel<T, int64_t>;
    kernel<<<grid_for(n), kThreads, 0, stream()>>>(
        op, static_cast<T*>(out), static_cast<const T*>(x), n, ix, ix.dense(), A(p0), A(p1));
    LAUNCH_CHECK();
  });
}

void launch_where(ElemType type, void* out, const int64_t* sizes, int ndim, const void* cond,
                  const int64_t* cond_strides, const void* a, const int64_t* a_strides,
                  const void* b, const int64_t* b_strides) {
  const int64_t n = count(sizes, ndim);
  if (n == 0) return;
  NvtxRange range("where");
  DenseStrides o(sizes, ndim);
  const int64_t* strides[4] = {o.s, cond_strides, a_strides, b_strides};
  const auto ix = make_indexer<4>(sizes, ndim, strides);
  dispatch_float(type, "where", [&](auto tag) {
    using T = typename decltype(tag)::type;
    auto kernel = ix.fits_32bit(n) ? where_kernel<T, uint32_t> : where_kernel<T, int64_t>;
    kernel<<<grid_for(n), kThreads, 0, stream()>>>(
        static_cast<T*>(out), static_cast<const T*>(cond), static_cast<const T*>(a),
        static_cast<const T*>(b), n, ix, ix.dense());
    LAUNCH_CHECK();
  });
}

}  // namespace mt::cuda
