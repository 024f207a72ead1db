// The backward engine.
//
// 1. Walk the graph from the output (iteratively: a deep graph must not overflow the stack) and
//    record a topological order of the Vars that were produced by a Node.
// 2. Visit them in reverse topological order. When a Var is visited, every consumer of it has
//    already added its contribution to that Var's pending gradient, so the gradient is complete:
//    run its Node's backward once and add each returned gradient to the input's pending sum.
// 3. Leaves that require grad accumulate into grad() (like PyTorch's .grad, across backward
//    calls); intermediate gradients are dropped as soon as they are used.
#include <unordered_map>
#include <unordered_set>

#include "autograd/var.h"
#include "ops/elementwise.h"

namespace mt {

namespace {

std::vector<VarImpl*> topological_order(VarImpl* root) {
  std::vector<VarImpl*> order;
  std::unordered_set<VarImpl*> visited;
  // (var, next input to look at): an explicit stack for a post-order DFS.
  std::vector<std::pair<VarImpl*, size_t>> stack{{root, 0}};
  visited.insert(root);
  while (!stack.empty()) {
    auto& [var, next] = stack.back();
    Node* node = var->grad_fn.get();
    if (node != nullptr && next < node->inputs.size()) {
      VarImpl* input = node->inputs[next++].impl();
      if (input != nullptr && input->requires_grad && visited.insert(input).second) {
        stack.emplace_back(input, 0);
      }
      continue;
    }
    order.push_back(var);
    stack.pop_back();
  }
  return order;  // inputs before the Vars that consume them
}

void accumulate(Tensor& slot, const Tensor& grad) {
  slot = slot.defined() ? ops::add(slot, grad) : grad;
}

}  // namespace

void Var::backward(const Tensor& grad_output, bool retain_graph) const {
  CHECK(defined(), "backward: undefined Var");
  CHECK(requires_grad(), "backward: this Var does not require grad (no input did, or it was made "
        "under NoGradGuard)");
  Tensor seed = grad_output;
  if (!seed.defined()) {
    CHECK(value().numel() == 1, "backward: a gradient must be given for a non-scalar output {}",
          value().describe());
    seed = Tensor::ones(value().shape(), value().dtype(), value().device());
  }
  CHECK(seed.shape() == value().shape(), "backward: gradient {} does not match the output {}",
        seed.describe(), value().describe());

  NoGradGuard no_grad;  // backward functions compute plain tensors; nothing records
  std::vector<VarImpl*> order = topological_order(impl());
  std::unordered_map<VarImpl*, Tensor> pending;
  pending[impl()] = seed;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    VarImpl* var = *it;
    auto found = pending.find(var);
    if (found == pending.end()) continue;  // no gradient reached it
    Tensor grad = std::move(found->second);
    pending.erase(found);
    Node* node = var->grad_fn.get();
    if (node == nullptr) {  // a leaf
      // A copy: backward functions may hand the same tensor to several inputs (add gives dy to
      // both), and an optimizer that scales one leaf's grad in place must not touch another's.
      accumulate(var->grad, var->grad.defined() ? grad : grad.clone());
      if (var->post_accumulate_hook) var->post_accumulate_hook(*var);
      continue;
    }
    CHECK(node->backward, "backward: the graph through '{}' was already freed; call backward with "
          "retain_graph=true to backward through it twice", node->op_name);
    std::vector<Tensor> input_grads = node->backward(grad);
    CHECK(input_grads.size() == node->inputs.size(), "backward of '{}' returned {} gradients for {} "
          "inputs", node->op_name, input_grads.size(), node->inputs.size());
    for (size_t i = 0; i < input_grads.size(); ++i) {
      VarImpl* input = node->inputs[i].impl();
      if (input == nullptr || !input->requires_grad || !input_grads[i].defined()) continue;
      CHECK(input_grads[i].shape() == input->value.shape(), "backward of '{}': gradient {} for "
            "input {} of shape {}", node->op_name, input_grads[i].describe(), i,
            shape_str(input->value.shape()));
      accumulate(pending[input], input_grads[i]);
    }
    if (!retain_graph) node->backward = nullptr;  // frees the saved tensors
  }
}

}  // namespace mt
