// Differentiable versions of the basic ops: elementwise math with broadcasting, reductions,
// matmul and linear, views (reshape, permute, narrow, expand, ...), concat/split and casts.
//
// Each function calls the forward op from ops/ and records a Node whose backward maps dy to one
// gradient per input. Broadcasting ops sum dy back to each input's shape with ops::sum_to. View
// ops return views of the input's value (no copy); their backward is the inverse view, or a
// zero tensor with dy copied into the viewed region (narrow, slice, select).
//
// Saved for backward: named on each group below, and only for the gradients that are wanted
// (mul(a, b) keeps b when a needs a gradient, a when b does). No function saves more than its
// inputs and output; an input is saved with save() (var.h), so a recomputable one is kept as its
// recipe. cast, reshape and view pass a recipe on (autograd/recompute.h).
#pragma once

#include <vector>

#include "autograd/var.h"

namespace mt {

// ---- elementwise, with broadcasting ------------------------------------------------------
// add, sub save nothing (only the input shapes); mul saves a for db and b for da; div saves b,
// and a for db.
Var add(const Var& a, const Var& b);
Var sub(const Var& a, const Var& b);
Var mul(const Var& a, const Var& b);
Var div(const Var& a, const Var& b);
// a ^ b elementwise (a > 0 where b is differentiated). Saves a; b for da; the output for db.
Var pow(const Var& a, const Var& b);
// x ^ p. Saves x.
Var pow(const Var& x, double p);
Var neg(const Var& x);
Var add_scalar(const Var& x, double s);
Var mul_scalar(const Var& x, double s);
Var rsub_scalar(const Var& x, double s);  // s - x
Var rdiv_scalar(const Var& x, double s);  // s / x; saves x
// exp, tanh, sqrt and rsqrt save their output; log, log1p and abs save their input.
Var exp(const Var& x);
Var log(const Var& x);
Var log1p(const Var& x);
Var sqrt(const Var& x);
Var rsqrt(const Var& x);
Var tanh(const Var& x);
Var abs(const Var& x);  // gradient sign(x), 0 at 0 as torch
// min(max(x, lo), hi); gradient passes where lo <= x <= hi. Saves x.
Var clamp(const Var& x, double lo, double hi);
// cond ? a : b with broadcasting; cond is a constant (never differentiated). Saves cond.
Var where(const Tensor& cond, const Var& a, const Var& b);

// ---- reductions (dims as in ops/reduce.h: empty = all) ----------------------------------
// sum and mean save only shapes; var saves x; max saves x and the result (the gradient is
// shared equally among tied maxima, as torch.amax).
Var sum(const Var& x, const std::vector<int>& dims = {}, bool keepdim = false);
Var mean(const Var& x, const std::vector<int>& dims = {}, bool keepdim = false);
Var var(const Var& x, const std::vector<int>& dims = {}, bool unbiased = true,
        bool keepdim = false);
Var max(const Var& x, const std::vector<int>& dims = {}, bool keepdim = false);

// ---- matrix products (shapes as in ops/matmul.h). Each operand is saved for the other's
// gradient: linear keeps x for dw and w for dx; the bias needs neither. ----------------------
Var matmul(const Var& a, const Var& b);
Var bmm(const Var& a, const Var& b);
// x [..., in] . w [out, in]^T + b [out]; b may be an undefined Var (no bias).
Var linear(const Var& x, const Var& w, const Var& b = Var());

// ---- views and shape ops (save only shapes and indices) -----------------------------------
Var reshape(const Var& x, const Shape& shape);
Var view(const Var& x, const Shape& shape);
Var permute(const Var& x, const std::vector<int>& dims);
Var transpose(const Var& x, int dim0, int dim1);
Var narrow(const Var& x, int dim, int64_t start, int64_t length);
Var slice(const Var& x, int dim, int64_t start, int64_t end, int64_t step = 1);
Var select(const Var& x, int dim, int64_t index);
Var unsqueeze(const Var& x, int dim);
Var squeeze(const Var& x, int dim);
Var expand(const Var& x, const Shape& shape);
Var concat(const std::vector<Var>& xs, int dim);
// Each piece is a narrow of x, with its own node: pieces may be used or ignored independently.
std::vector<Var> split(const Var& x, const std::vector<int64_t>& sizes, int dim);
std::vector<Var> chunk(const Var& x, int64_t chunks, int dim);
// x converted to dtype; the gradient is cast back to x's dtype. Saves nothing; the output is
// recomputable when x is, and always when the cast widens (bf16 to float32: recompute.h).
Var cast(const Var& x, DType dtype);
// cast(x, copy.dtype()) whose converted value is given: `copy` holds x.value() converted, made
// ahead of time (bf16-mixed's weight copies, made once per optimizer step: models/layers.h), so
// nothing is converted here; the gradient is cast back to x's dtype as in cast(). Saves nothing.
Var cast_cached(const Var& x, const Tensor& copy);

// ---- operators --------------------------------------------------------------------------
inline Var operator+(const Var& a, const Var& b) { return add(a, b); }
inline Var operator-(const Var& a, const Var& b) { return sub(a, b); }
inline Var operator*(const Var& a, const Var& b) { return mul(a, b); }
inline Var operator/(const Var& a, const Var& b) { return div(a, b); }
inline Var operator-(const Var& x) { return neg(x); }
inline Var operator+(const Var& x, double s) { return add_scalar(x, s); }
inline Var operator+(double s, const Var& x) { return add_scalar(x, s); }
inline Var operator-(const Var& x, double s) { return add_scalar(x, -s); }
inline Var operator-(double s, const Var& x) { return rsub_scalar(x, s); }
inline Var operator*(const Var& x, double s) { return mul_scalar(x, s); }
inline Var operator*(double s, const Var& x) { return mul_scalar(x, s); }
inline Var operator/(const Var& x, double s) { return mul_scalar(x, 1.0 / s); }
inline Var operator/(double s, const Var& x) { return rdiv_scalar(x, s); }

}  // namespace mt
