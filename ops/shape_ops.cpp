// concat, split, chunk and cast (see shape_ops.h).
#include "ops/shape_ops.h"

#include <algorithm>

namespace mt::ops {

namespace {

int wrap_dim(int dim, int rank, const char* op, const Shape& shape) {
  CHECK(rank > 0, "{}: a 0-dim tensor has no dim to cut along", op);
  CHECK(dim >= -rank && dim < rank, "{}: dim {} out of range for shape {}", op, dim,
        shape_str(shape));
  return dim < 0 ? dim + rank : dim;
}

}  // namespace

Tensor concat(const std::vector<Tensor>& tensors, int dim) {
  CHECK(!tensors.empty(), "concat: got no tensors");
  const Tensor& first = tensors[0];
  CHECK(first.defined(), "concat: tensor 0 is undefined");
  const int d = wrap_dim(dim, first.dim(), "concat", first.shape());
  Shape out_shape = first.shape();
  out_shape[d] = 0;
  for (size_t k = 0; k < tensors.size(); ++k) {
    const Tensor& t = tensors[k];
    CHECK(t.defined(), "concat: tensor {} is undefined", k);
    CHECK(t.dtype() == first.dtype() && t.device() == first.device(),
          "concat: tensor {} is {}, tensor 0 is {}", k, t.describe(), first.describe());
    bool same = t.dim() == first.dim();
    for (int i = 0; same && i < t.dim(); ++i) same = i == d || t.size(i) == first.size(i);
    CHECK(same, "concat: tensor {} has shape {}, expected {} except along dim {}", k,
          shape_str(t.shape()), shape_str(first.shape()), d);
    out_shape[d] += t.size(d);
  }
  Tensor out = Tensor::empty(out_shape, first.dtype(), first.device());
  int64_t at = 0;
  for (const Tensor& t : tensors) {
    if (t.size(d) == 0) continue;
    out.narrow(d, at, t.size(d)).copy_(t);  // copy_ runs on whichever device holds them
    at += t.size(d);
  }
  return out;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int dim) {
  CHECK(x.defined(), "split: got an undefined tensor");
  const int d = wrap_dim(dim, x.dim(), "split", x.shape());
  int64_t total = 0;
  for (int64_t s : sizes) {
    CHECK(s >= 0, "split: negative piece size in {}", sizes);
    total += s;
  }
  CHECK(total == x.size(d), "split: sizes {} add up to {}, but dim {} of {} has size {}", sizes,
        total, d, shape_str(x.shape()), x.size(d));
  std::vector<Tensor> pieces;
  int64_t at = 0;
  for (int64_t s : sizes) {
    pieces.push_back(x.narrow(d, at, s));
    at += s;
  }
  return pieces;
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int dim) {
  CHECK(x.defined(), "split: got an undefined tensor");
  CHECK(split_size > 0, "split: split_size must be positive, got {}", split_size);
  const int d = wrap_dim(dim, x.dim(), "split", x.shape());
  std::vector<int64_t> sizes;
  for (int64_t at = 0; at < x.size(d); at += split_size) {
    sizes.push_back(std::min(split_size, x.size(d) - at));
  }
  if (sizes.empty()) sizes.push_back(0);  // an empty dim splits into one empty piece
  return split(x, sizes, d);
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int dim) {
  CHECK(x.defined(), "chunk: got an undefined tensor");
  CHECK(chunks > 0, "chunk: chunks must be positive, got {}", chunks);
  const int d = wrap_dim(dim, x.dim(), "chunk", x.shape());
  const int64_t piece = (x.size(d) + chunks - 1) / chunks;
  return split(x, piece > 0 ? piece : 1, d);
}

Tensor cast(const Tensor& x, DType dtype) {
  CHECK(x.defined(), "cast: got an undefined tensor");
  return x.to(dtype);
}

}  // namespace mt::ops
