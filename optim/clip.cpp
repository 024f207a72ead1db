#include "optim/clip.h"

#include <cmath>

#include "base/error.h"
#include "ops/elementwise.h"
#include "ops/optim_ops.h"

namespace mt {

using nlohmann::json;

ClipResult clip_grad_norm(const std::vector<Var>& params, double max_norm) {
  CHECK(max_norm > 0.0, "clip_grad_norm: max_norm must be positive, got {}", max_norm);
  std::vector<Tensor> grads;
  for (const auto& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  CHECK(!grads.empty(), "clip_grad_norm: none of the {} parameters has a gradient", params.size());
  ClipResult r;
  r.norm = ops::grad_global_norm(grads);
  r.coef = ops::clip_coefficient(r.norm, static_cast<float>(max_norm));
  return r;
}

void scale_grads_(const std::vector<Var>& params, const Tensor& coef) {
  CHECK(coef.defined() && coef.numel() == 1, "scale_grads_: expected a one-element coefficient");
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    Tensor g = p.grad();
    g.copy_(ops::mul(g, coef.to(g.dtype()).to(g.device())));
  }
}

GradAccumulation::GradAccumulation(int steps) : steps_(steps) {
  CHECK(steps >= 1, "gradient accumulation: steps must be >= 1, got {}", steps);
}

bool GradAccumulation::micro_step() {
  ++position_;
  if (position_ < steps_) return false;
  position_ = 0;
  return true;
}

json GradAccumulation::state_dict() const {
  return json{{"steps", steps_}, {"position", position_}};
}

void GradAccumulation::load_state_dict(const json& s) {
  int steps = s.at("steps").get<int>();
  CHECK(steps == steps_, "gradient accumulation state: saved with {} steps, configured {}", steps,
        steps_);
  position_ = s.at("position").get<int>();
}

EarlyStopping::EarlyStopping(int patience, double min_delta)
    : patience_(patience), min_delta_(min_delta) {
  CHECK(patience >= 1, "early stopping: patience must be >= 1, got {}", patience);
  CHECK(min_delta >= 0.0, "early stopping: min_delta must be >= 0, got {}", min_delta);
}

bool EarlyStopping::update(double loss) {
  improved_ = loss < best_ - min_delta_;  // false for NaN: a NaN epoch is a bad epoch
  if (improved_) {
    best_ = loss;
    bad_epochs_ = 0;
  } else {
    ++bad_epochs_;
  }
  return should_stop();
}

json EarlyStopping::state_dict() const {
  return json{{"patience", patience_},
              {"min_delta", min_delta_},
              {"best", std::isfinite(best_) ? json(best_) : json(nullptr)},
              {"bad_epochs", bad_epochs_}};
}

void EarlyStopping::load_state_dict(const json& s) {
  best_ =
      s.at("best").is_null() ? std::numeric_limits<double>::infinity() : s.at("best").get<double>();
  bad_epochs_ = s.at("bad_epochs").get<int>();
  improved_ = false;
}

}  // namespace mt
