// The backward engine.
//
// 1. Walk the graph of Nodes from the output's (iteratively: a deep graph must not overflow the
//    stack) and record a topological order.
// 2. Visit the Nodes in reverse topological order. When a Node is visited, every consumer of its
//    output has already added its contribution to the Node's pending gradient, so the gradient
//    is complete: run its backward once, add each returned gradient to the pending sum of the
//    Node its edge points at, and drop the backward (and with it the saved tensors).
// 3. A leaf's accumulator adds the complete gradient into the leaf's grad() (like PyTorch's
//    .grad, across backward calls); intermediate gradients are dropped as soon as they are used.
#include <unordered_map>
#include <unordered_set>

#include "autograd/var.h"
#include "cuda/nvtx.h"
#include "ops/elementwise.h"

namespace mt {

namespace {

std::vector<Node*> topological_order(Node* root) {
  std::vector<Node*> order;
  std::unordered_set<Node*> visited;
  // (node, next edge to look at): an explicit stack for a post-order DFS.
  std::vector<std::pair<Node*, size_t>> stack{{root, 0}};
  visited.insert(root);
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->next.size()) {
      Node* input = node->next[next++].get();
      if (input != nullptr && visited.insert(input).second) stack.emplace_back(input, 0);
      continue;
    }
    order.push_back(node);
    stack.pop_back();
  }
  return order;  // producers before the Nodes that consume their outputs
}

void accumulate(Tensor& slot, const Tensor& grad) {
  slot = slot.defined() ? ops::add(slot, grad) : grad;
}

// The end of a gradient's path: into the leaf's grad(), then the leaf's hook.
void accumulate_into_leaf(Node& acc, const Tensor& grad) {
  const std::shared_ptr<VarImpl> leaf = acc.leaf.lock();
  if (leaf == nullptr) return;  // the leaf is gone: nobody can read its gradient
  // A copy: backward functions may hand the same tensor to several inputs (add gives dy to
  // both), and an optimizer that scales one leaf's grad in place must not touch another's.
  accumulate(leaf->grad, leaf->grad.defined() ? grad : grad.clone());
  if (leaf->post_accumulate_hook) leaf->post_accumulate_hook(*leaf);
}

}  // namespace

void Var::backward(const Tensor& grad_output, bool retain_graph) const {
  CHECK(defined(), "backward: undefined Var");
  CHECK(requires_grad(),
        "backward: this Var does not require grad (no input did, or it was made under "
        "NoGradGuard)");
  Tensor seed = grad_output;
  if (!seed.defined()) {
    CHECK(value().numel() == 1, "backward: a gradient must be given for a non-scalar output {}",
          value().describe());
    seed = Tensor::ones(value().shape(), value().dtype(), value().device());
  }
  CHECK(seed.shape() == value().shape(), "backward: gradient {} does not match the output {}",
        seed.describe(), value().describe());

  NoGradGuard no_grad;  // backward functions compute plain tensors; nothing records
  // Held for the whole pass: a leaf's accumulator lives only as long as an edge points at it.
  const std::shared_ptr<Node> root = gradient_edge(*this);
  std::vector<Node*> order = topological_order(root.get());
  std::unordered_map<Node*, Tensor> pending;
  pending[root.get()] = seed;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = *it;
    auto found = pending.find(node);
    if (found == pending.end()) continue;  // no gradient reached it
    Tensor grad = std::move(found->second);
    pending.erase(found);
    if (node->is_accumulator()) {
      accumulate_into_leaf(*node, grad);
      continue;
    }
    CHECK(node->backward,
          "backward: the graph through '{}' was already freed; call backward with "
          "retain_graph=true to backward through it twice",
          node->op_name);
    std::vector<Tensor> input_grads;
    {
      cuda::NvtxRange range(node->op_name);
      input_grads = node->backward(grad);
    }
    CHECK(input_grads.size() == node->next.size(),
          "backward of '{}' returned {} gradients for {} inputs", node->op_name, input_grads.size(),
          node->next.size());
    // Done with the incoming gradient and the saved tensors: freed before the sums below
    // allocate, so that the two never coexist.
    grad = Tensor();
    if (!retain_graph) node->backward = nullptr;
    for (size_t i = 0; i < input_grads.size(); ++i) {
      Node* input = node->next[i].get();
      if (input == nullptr || !input_grads[i].defined()) continue;
      CHECK(input_grads[i].shape() == input->shape,
            "backward of '{}': gradient {} for input {} of shape {}", node->op_name,
            input_grads[i].describe(), i, shape_str(input->shape));
      accumulate(pending[input], input_grads[i]);
    }
  }
}

}  // namespace mt
