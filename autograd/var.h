// Var: a Tensor that remembers how it was made, so that gradients can flow back to it.
//
// Reverse-mode autograd in three pieces:
//   - Var holds a value, its accumulated gradient, requires_grad, and the Node that produced it;
//   - Node is one recorded op: its inputs (the edges of the graph) and a backward function that
//     maps the gradient of its output to one gradient per input;
//   - backward() (autograd/engine.cpp) orders the graph topologically from the output and runs
//     each node's backward once, after every consumer of its output has added its contribution.
//
// Each differentiable op is one short function (autograd/functions_*.cpp) that calls the
// forward op from ops/, captures what backward needs, and records a Node with make_result():
//
//   Var exp(const Var& x) {
//     Tensor y = ops::exp(x.value());
//     return make_result(y, {x}, "exp", [y](const Tensor& dy) {
//       return std::vector<Tensor>{ops::mul(dy, y)};  // y = exp(x)  =>  dx = dy * y
//     });
//   }
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace mt {

class Var;
struct Node;

struct VarImpl {
  Tensor value;
  Tensor grad;  // undefined until a backward reaches this Var
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;  // null for leaves
  std::string name;               // optional, for error messages and parameter listings
  // Called on a leaf once a backward pass has finished accumulating into its grad (the moment
  // its gradient for this pass is complete): data-parallel training starts the all-reduce of a
  // gradient bucket from here, overlapping communication with the rest of the backward.
  std::function<void(VarImpl&)> post_accumulate_hook;
};

// Maps the gradient of the node's output to one gradient per input (an undefined Tensor for an
// input that needs none). Captured tensors are the "saved for backward" state.
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;

struct Node {
  const char* op_name = "";
  std::vector<Var> inputs;  // only the inputs that require grad are followed
  BackwardFn backward;      // reset after it runs, which frees the saved tensors
};

class Var {
 public:
  Var() = default;
  explicit Var(Tensor value, bool requires_grad = false, std::string name = "");

  bool defined() const { return impl_ != nullptr; }
  const Tensor& value() const;
  Tensor& mutable_value();  // for optimizers: updates in place, outside the graph
  const Tensor& grad() const;
  void set_grad(const Tensor& grad);
  bool requires_grad() const;
  void set_requires_grad(bool flag);
  const std::string& name() const;
  void set_name(const std::string& name);
  const std::shared_ptr<Node>& grad_fn() const;
  bool is_leaf() const { return grad_fn() == nullptr; }

  // Convenience forwards to the value.
  const Shape& shape() const { return value().shape(); }
  int64_t size(int dim) const { return value().size(dim); }
  int dim() const { return value().dim(); }
  DType dtype() const { return value().dtype(); }
  Device device() const { return value().device(); }
  double item() const { return value().item(); }

  // Back-propagates from this Var. With no argument the Var must hold one element and the
  // upstream gradient is 1. Gradients accumulate into the leaves' grad(). Unless
  // retain_graph, the graph's saved tensors are freed as it goes.
  void backward(const Tensor& grad_output = Tensor(), bool retain_graph = false) const;

  // A Var with the same value and no history.
  Var detach() const;
  // Forgets the accumulated gradient (set to undefined, like set_to_none=True).
  void zero_grad();

  VarImpl* impl() const { return impl_.get(); }
  bool same_as(const Var& other) const { return impl_ == other.impl_; }

 private:
  std::shared_ptr<VarImpl> impl_;
};

// Records an op: returns a Var holding `value` whose grad_fn calls `backward`, or a plain Var
// when no input requires grad or grad mode is off.
Var make_result(Tensor value, std::vector<Var> inputs, const char* op_name, BackwardFn backward);

// Grad mode: while a NoGradGuard is alive, ops record nothing (inference, optimizer updates).
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace mt
