// Var: a Tensor that remembers how it was made, so that gradients can flow back to it.
//
// Reverse-mode autograd in four pieces, as PyTorch's:
//   - Var holds a value, its accumulated gradient, requires_grad, and the Node that produced it;
//   - Node is one recorded op: a backward function that maps the gradient of its output to one
//     gradient per input, and one edge per input to the Node that takes that input's gradient
//     (the input's producer, or a leaf's accumulator);
//   - SavedTensor is what a backward function keeps of the forward: only the tensors its formula
//     names, captured when the op runs;
//   - backward() (autograd/engine.cpp) orders the Nodes topologically from the output and runs
//     each backward once, after every consumer of its output has added its contribution.
//
// The graph holds no forward values: edges point at Nodes, never at Vars. A forward value lives
// as long as the code that computed it holds its Var, or a backward saved it. So a value that no
// backward names (the output of an add, a view's base, the input of a cast) is freed as soon as
// the forward moves on, and a saved one when its backward has run.
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
//
// A backward that needs an input saves it with save(x) (not x.value()): when x is cheaper to
// recompute than to keep (autograd/recompute.h), that keeps x's recipe instead of its value.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace mt {

class Var;
struct Node;

// Recomputes a forward value from what it captured (autograd/recompute.h makes them).
struct Recipe {
  std::function<Tensor()> run;
};

struct VarImpl {
  Tensor value;
  Tensor grad;  // undefined until a backward reaches this Var
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;  // null for leaves
  // A leaf's gradient accumulator while a graph that uses it is alive (shared by every edge to
  // the leaf, so the leaf's gradient is complete, and its hook runs, once per backward).
  std::weak_ptr<Node> grad_accumulator;
  // Set when the value can be recomputed from what is kept anyway (autograd/recompute.h): a
  // backward that saves this Var keeps the recipe, not the value.
  std::shared_ptr<const Recipe> recipe;
  std::string name;  // optional, for error messages and parameter listings
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
  // One per input of the op: the Node that takes that input's gradient, or null when the input
  // needs none (a constant, or anything under no-grad).
  std::vector<std::shared_ptr<Node>> next;
  BackwardFn backward;  // reset after it runs, which frees the saved tensors
  Shape shape;          // the output's: the gradient that arrives here must have it
  // Set on a leaf's gradient accumulator (PyTorch's AccumulateGrad), whose backward is empty:
  // the gradient goes into the leaf's grad(). Weak: a graph does not keep a leaf alive.
  std::weak_ptr<VarImpl> leaf;

  // A recorded op has at least one edge; an accumulator has none.
  bool is_accumulator() const { return next.empty(); }
};

// What a backward keeps of a forward value (PyTorch's SavedVariable): the tensor itself, or the
// recipe that recomputes it. Capture it by value in the backward lambda; get() in backward.
class SavedTensor {
 public:
  SavedTensor() = default;
  explicit SavedTensor(Tensor value) : value_(std::move(value)) {}
  explicit SavedTensor(std::shared_ptr<const Recipe> recipe) : recipe_(std::move(recipe)) {}

  bool defined() const { return value_.defined() || recipe_ != nullptr; }
  bool is_recipe() const { return recipe_ != nullptr; }
  // The value (recomputed each call when only the recipe was kept).
  Tensor get() const;

 private:
  Tensor value_;
  std::shared_ptr<const Recipe> recipe_;
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
  // The recipe that recomputes the value, or null (autograd/recompute.h).
  const std::shared_ptr<const Recipe>& recipe() const;

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
  friend std::shared_ptr<Node> gradient_edge(const Var& v);
  std::shared_ptr<VarImpl> impl_;
};

// What a backward keeps of an input x: x's recipe when it has one, else its value.
SavedTensor save(const Var& x);

// The Node that takes v's gradient: its grad_fn, or, for a leaf that requires grad, its
// accumulator (made on first use); null when v is undefined or needs no gradient.
std::shared_ptr<Node> gradient_edge(const Var& v);

// Records an op: returns a Var holding `value` whose grad_fn calls `backward`, or a plain Var
// when no input requires grad or grad mode is off. The inputs only give the edges: the Node
// keeps none of their values.
Var make_result(Tensor value, const std::vector<Var>& inputs, const char* op_name,
                BackwardFn backward);

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
