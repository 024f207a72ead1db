#include "autograd/var.h"

namespace mt {

namespace {
thread_local bool g_grad_enabled = true;
}  // namespace

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

Tensor SavedTensor::get() const {
  if (recipe_ != nullptr) {
    NoGradGuard no_grad;  // a recomputation records nothing
    return recipe_->run();
  }
  CHECK(value_.defined(), "SavedTensor: a backward read a tensor its op did not save");
  return value_;
}

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
  CHECK(!flag || is_floating(value().dtype()),
        "Var: only floating tensors can require grad, got {}", value().describe());
  checked(impl_).requires_grad = flag;
}
const std::string& Var::name() const { return checked(impl_).name; }
void Var::set_name(const std::string& name) { checked(impl_).name = name; }
const std::shared_ptr<Node>& Var::grad_fn() const { return checked(impl_).grad_fn; }
const std::shared_ptr<const Recipe>& Var::recipe() const { return checked(impl_).recipe; }

Var Var::detach() const { return Var(value(), false, name()); }
void Var::zero_grad() { checked(impl_).grad = Tensor(); }

SavedTensor save(const Var& x) {
  if (!x.defined()) return SavedTensor();
  if (x.recipe() != nullptr) return SavedTensor(x.recipe());
  return SavedTensor(x.value());
}

std::shared_ptr<Node> gradient_edge(const Var& v) {
  if (!v.defined() || !v.requires_grad()) return nullptr;
  VarImpl& impl = *v.impl_;
  if (impl.grad_fn != nullptr) return impl.grad_fn;
  std::shared_ptr<Node> acc = impl.grad_accumulator.lock();
  if (acc == nullptr) {
    acc = std::make_shared<Node>();
    acc->op_name = "accumulate_grad";
    acc->shape = impl.value.shape();
    acc->leaf = v.impl_;
    impl.grad_accumulator = acc;
  }
  return acc;
}

Var make_result(Tensor value, const std::vector<Var>& inputs, const char* op_name,
                BackwardFn backward) {
  Var out(std::move(value));
  if (!grad_enabled()) return out;
  std::vector<std::shared_ptr<Node>> next;
  next.reserve(inputs.size());
  bool needs_grad = false;
  for (const Var& in : inputs) {
    next.push_back(gradient_edge(in));
    needs_grad = needs_grad || next.back() != nullptr;
  }
  if (!needs_grad) return out;
  auto node = std::make_shared<Node>();
  node->op_name = op_name;
  node->next = std::move(next);
  node->backward = std::move(backward);
  node->shape = out.shape();
  out.impl()->requires_grad = true;
  out.impl()->grad_fn = std::move(node);
  return out;
}

}  // namespace mt
