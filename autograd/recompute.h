// Recomputation in place of storage, for cheap values that a later op would otherwise keep.
//
// A backward keeps the tensors its formula names (var.h). Some of them are cheap to make again
// from tensors that are kept anyway: a norm's output from the norm's input (which the norm's own
// backward keeps), the GELU of a hidden layer from its input (which GELU's backward keeps), the
// float32 copy of a bfloat16 GEMM output from that output (half the bytes). recomputable()
// marks such a value: a backward that saves it (save(y)) keeps a Recipe, the function and what
// saving its input keeps, and runs the function again when the backward needs the value.
//
//   // fc2 keeps "gelu of h" and h, which GELU's backward keeps anyway: no [.., F] tensor more.
//   Var h = fc1->forward(x);
//   return fc2->forward(recomputable([](const Var& v) { return gelu_tanh(v); }, h));
//
// Recipes pass through the ops that change no value or only its width: cast(), reshape() and
// view() of a recomputable Var are recomputable, and a widening cast (bfloat16 to float32) is
// recomputable from its narrower input whatever that input is.
//
// What it costs: the function runs again in every backward that reads the value (a Linear reads
// its input once, for dW). What fn must be: a pure function of x and of parameters that do not
// change before the backward (no dropout or other draw from a generator: the recomputation must
// give the same bits), and cheap (elementwise or a norm, memory-bound). With grad mode off, or
// when y needs no gradient, nothing is marked and nothing extra is kept.
#pragma once

#include <functional>

#include "autograd/var.h"

namespace mt {

// y = fn(x), recorded as usual, and marked recomputable.
Var recomputable(const std::function<Var(const Var&)>& fn, const Var& x);

// For functions that pass a recipe on: gives y the recipe f(value kept by save(x)) when grad
// mode is on (with it off, no backward can save y).
void set_recipe(const Var& y, const Var& x, std::function<Tensor(const Tensor&)> f);

}  // namespace mt
