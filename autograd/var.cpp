#include "autograd/var.h"

namespace mt {

namespace {
thread_local bool g_grad_enabled = true;
}  // namespace

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

Var::Var(Tensor value, bool requires_grad, std::string name) : impl_(std::make_shared<VarImpl>()) {
  CHECK(value.defined(), "Var: the value is an undefined tensor");
  CHECK(!requires_grad || is_floating(value.dtype()),
        "Var: only floating tensors can require grad, got {}", value.describe());
  impl_->value = std::move(value);
  impl_->requires_grad = requires_grad;
  impl_->name = std::move(name);
}

namespace {
VarImpl& checked(const std::shared_ptr<VarImpl>& impl) {
  CHECK(impl != nullptr, "Var: use of an undefined Var");
  return *impl;
}
}  // namespace

const Tensor& Var::value() const { return checked(impl_).value; }
Tensor& Var::mutable_value() { return checked(impl_).value; }
const Tensor& Var::grad() const { return checked(impl_).grad; }
void Var::set_grad(const Tensor& grad) {
  CHECK(!grad.defined() || grad.shape() == value().shape(),
        "set_grad: gradient {} does not match the value {}", grad.describe(), value().describe());
  checked(impl_).grad = grad;
}
bool Var::requires_grad() const { return checked(impl_).requires_grad; }
void Var::set_requires_grad(bool flag) {
  CHECK(!flag || is_floating(value().dtype()), "Var: only floating tensors can require grad, got {}",
        value().describe());
  checked(impl_).requires_grad = flag;
}
const std::string& Var::name() const { return checked(impl_).name; }
void Var::set_name(const std::string& name) { checked(impl_).name = name; }
const std::shared_ptr<Node>& Var::grad_fn() const { return checked(impl_).grad_fn; }

Var Var::detach() const { return Var(value(), false, name()); }
void Var::zero_grad() { checked(impl_).grad = Tensor(); }

Var make_result(Tensor value, std::vector<Var> inputs, const char* op_name, BackwardFn backward) {
  bool needs_grad = false;
  if (grad_enabled()) {
    for (const Var& in : inputs) needs_grad = needs_grad || (in.defined() && in.requires_grad());
  }
  Var out(std::move(value));
  if (!needs_grad) return out;
  auto node = std::make_shared<Node>();
  node->op_name = op_name;
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  out.impl()->requires_grad = true;
  out.impl()->grad_fn = std::move(node);
  return out;
}

}  // namespace mt
