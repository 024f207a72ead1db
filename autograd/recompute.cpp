#include "autograd/recompute.h"

namespace mt {

void set_recipe(const Var& y, const Var& x, std::function<Tensor(const Tensor&)> f) {
  if (!grad_enabled() || y.same_as(x)) return;
  auto recipe = std::make_shared<Recipe>();
  recipe->run = [f = std::move(f), kept = save(x)] { return f(kept.get()); };
  y.impl()->recipe = std::move(recipe);
}

Var recomputable(const std::function<Var(const Var&)>& fn, const Var& x) {
  Var y = fn(x);
  // A leaf (fn returned a parameter or x itself) or a value that needs no gradient: there is
  // nothing to recompute it from, or no backward of y's consumers differentiates through it.
  if (y.is_leaf() || !y.requires_grad()) return y;
  set_recipe(y, x, [fn](const Tensor& kept) { return fn(Var(kept)).value(); });
  return y;
}

}  // namespace mt
