// gradcheck (see gradcheck.h): analytic gradients from one backward with a random upstream
// gradient u, numeric ones from central differences of L(x) = sum(f(x) * u).
#include "autograd/gradcheck.h"

#include <algorithm>
#include <cmath>

#include "tensor/random.h"

namespace mt {

namespace {

// "[1, 0, 2]": the multi-index of flat element j of shape, for the failure message.
std::string index_str(int64_t j, const Shape& shape) {
  Shape index(shape.size(), 0);
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    index[d] = j % shape[d];
    j /= shape[d];
  }
  return shape_str(index);
}

// L = sum(f(xs) * u) in float64, with nothing recorded.
double projected_output(const GradcheckFn& f, const std::vector<Tensor>& xs,
                        const std::vector<double>& u) {
  NoGradGuard no_grad;
  std::vector<Var> vars;
  for (const Tensor& x : xs) vars.emplace_back(x, false);
  const std::vector<double> y = f(vars).value().to_vector<double>();
  double total = 0.0;
  for (size_t i = 0; i < y.size(); ++i) total += y[i] * u[i];
  return total;
}

}  // namespace

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options) {
  std::vector<Tensor> xs;
  std::vector<Var> leaves;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    CHECK(t.defined() && t.dtype() == kFloat64 && !t.is_cuda(),
          "gradcheck: input {} must be a float64 CPU tensor, got {}", i,
          t.defined() ? t.describe() : "undefined");
    xs.push_back(t.clone());  // contiguous, and private: perturbing it touches nothing else
    leaves.emplace_back(xs.back().clone(), true);
  }

  // Analytic: one backward with upstream gradient u.
  const Var y = f(leaves);
  CHECK(y.defined() && y.dtype() == kFloat64, "gradcheck: f must return a float64 Var, got {}",
        y.defined() ? y.value().describe() : "undefined");
  Generator gen(options.seed);
  const Tensor u = Tensor::uniform(y.shape(), 0.5, 1.5, gen, kFloat64);
  const std::vector<double> u_values = u.to_vector<double>();
  if (y.requires_grad()) y.backward(u);

  GradcheckResult result;
  for (size_t i = 0; i < xs.size(); ++i) {
    const bool has_grad = leaves[i].grad().defined();
    const std::vector<double> analytic =
        has_grad ? leaves[i].grad().to_vector<double>() : std::vector<double>();
    double* x = xs[i].data<double>();
    for (int64_t j = 0; j < xs[i].numel(); ++j) {
      const double saved = x[j];
      x[j] = saved + options.eps;
      const double plus = projected_output(f, xs, u_values);
      x[j] = saved - options.eps;
      const double minus = projected_output(f, xs, u_values);
      x[j] = saved;
      const double numeric = (plus - minus) / (2.0 * options.eps);
      const double a = has_grad ? analytic[j] : 0.0;
      const double abs_err = std::abs(a - numeric);
      result.max_abs_error = std::max(result.max_abs_error, abs_err);
      result.max_rel_error =
          std::max(result.max_rel_error, abs_err / std::max(std::abs(numeric), 1e-12));
      const bool ok = abs_err <= options.atol + options.rtol * std::abs(numeric);
      if (!ok && result.passed) {
        result.passed = false;
        result.message = fmt::format(
            "gradcheck: input {} ({}) element {}: analytic {:.10g}{} vs numeric {:.10g} "
            "(abs error {:.3g}, allowed {:.3g})",
            i, xs[i].describe(), index_str(j, xs[i].shape()), a,
            has_grad ? "" : " (backward gave no gradient)", numeric, abs_err,
            options.atol + options.rtol * std::abs(numeric));
      }
    }
  }
  if (!result.passed && options.throw_on_failure) FAIL("{}", result.message);
  return result;
}

}  // namespace mt
