#include "optim/scheduler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "base/error.h"

namespace mt {

using nlohmann::json;

namespace {
constexpr double kPi = 3.14159265358979323846;

// JSON has no infinity: the plateau's "no best yet" is saved as null.
json number_or_null(double x) { return std::isfinite(x) ? json(x) : json(nullptr); }
double number_or_inf(const json& j) {
  return j.is_null() ? std::numeric_limits<double>::infinity() : j.get<double>();
}
}  // namespace

Scheduler::Scheduler(Optimizer& opt) : opt_(opt) {
  for (size_t g = 0; g < opt.num_groups(); ++g) base_lrs_.push_back(opt.lr(g));
}

json Scheduler::state_dict() const { return json{{"name", name()}, {"base_lrs", base_lrs_}}; }

void Scheduler::load_state_dict(const json& s) {
  CHECK(s.value("name", std::string()) == name(),
        "scheduler state: saved by '{}', loading into '{}'", s.value("name", "?"), name());
  auto lrs = s.at("base_lrs").get<std::vector<double>>();
  CHECK(lrs.size() == base_lrs_.size(), "scheduler state: {} groups saved, the optimizer has {}",
        lrs.size(), base_lrs_.size());
  base_lrs_ = lrs;
}

// ---- ReduceLROnPlateau ------------------------------------------------------------------------

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& opt, PlateauConfig cfg)
    : Scheduler(opt), cfg_(cfg), best_(std::numeric_limits<double>::infinity()) {
  CHECK(cfg.factor > 0.0 && cfg.factor < 1.0, "plateau: factor must be in (0, 1), got {}",
        cfg.factor);
  CHECK(cfg.patience >= 0, "plateau: patience must be >= 0, got {}", cfg.patience);
  CHECK(cfg.threshold >= 0.0, "plateau: threshold must be >= 0, got {}", cfg.threshold);
  CHECK(cfg.cooldown >= 0, "plateau: cooldown must be >= 0, got {}", cfg.cooldown);
  CHECK(cfg.min_lr >= 0.0, "plateau: min_lr must be >= 0, got {}", cfg.min_lr);
}

void ReduceLROnPlateau::on_epoch_end(double loss) {
  ++epochs_;
  // A NaN loss is never better (the comparison is false), so it counts as a bad epoch.
  if (loss < best_ * (1.0 - cfg_.threshold)) {
    best_ = loss;
    num_bad_epochs_ = 0;
  } else {
    ++num_bad_epochs_;
  }
  if (cooldown_counter_ > 0) {
    --cooldown_counter_;
    num_bad_epochs_ = 0;
  }
  if (num_bad_epochs_ > cfg_.patience) {
    for (size_t g = 0; g < opt_.num_groups(); ++g) {
      double old_lr = opt_.lr(g);
      double new_lr = std::max(old_lr * cfg_.factor, cfg_.min_lr);
      if (old_lr - new_lr > cfg_.eps) opt_.set_lr(g, new_lr);
    }
    cooldown_counter_ = cfg_.cooldown;
    num_bad_epochs_ = 0;
  }
}

json ReduceLROnPlateau::state_dict() const {
  json s = Scheduler::state_dict();
  s["best"] = number_or_null(best_);
  s["num_bad_epochs"] = num_bad_epochs_;
  s["cooldown_counter"] = cooldown_counter_;
  s["epochs"] = epochs_;
  return s;
}

void ReduceLROnPlateau::load_state_dict(const json& s) {
  Scheduler::load_state_dict(s);
  best_ = number_or_inf(s.at("best"));
  num_bad_epochs_ = s.at("num_bad_epochs").get<int>();
  cooldown_counter_ = s.at("cooldown_counter").get<int>();
  epochs_ = s.at("epochs").get<int64_t>();
}

// ---- warmup + cosine --------------------------------------------------------------------------

WarmupCosine::WarmupCosine(Optimizer& opt, WarmupCosineConfig cfg) : Scheduler(opt), cfg_(cfg) {
  CHECK(cfg.warmup_steps >= 0, "cosine: warmup_steps must be >= 0, got {}", cfg.warmup_steps);
  CHECK(cfg.total_steps > 0 && cfg.total_steps >= cfg.warmup_steps,
        "cosine: total_steps must be positive and >= warmup_steps ({}), got {}", cfg.warmup_steps,
        cfg.total_steps);
  CHECK(cfg.min_lr >= 0.0, "cosine: min_lr must be >= 0, got {}", cfg.min_lr);
  apply();
}

double WarmupCosine::lr_at(int64_t s, double base) const {
  if (s < cfg_.warmup_steps) {
    return base * static_cast<double>(s + 1) / static_cast<double>(cfg_.warmup_steps);
  }
  int64_t decay_steps = std::max<int64_t>(1, cfg_.total_steps - cfg_.warmup_steps);
  double progress = std::min(1.0, static_cast<double>(s - cfg_.warmup_steps) / decay_steps);
  return cfg_.min_lr + (base - cfg_.min_lr) * 0.5 * (1.0 + std::cos(kPi * progress));
}

void WarmupCosine::apply() {
  for (size_t g = 0; g < opt_.num_groups(); ++g) opt_.set_lr(g, lr_at(step_, base_lrs_[g]));
}

void WarmupCosine::on_step() {
  ++step_;
  apply();
}

json WarmupCosine::state_dict() const {
  json s = Scheduler::state_dict();
  s["step"] = step_;
  return s;
}

void WarmupCosine::load_state_dict(const json& s) {
  Scheduler::load_state_dict(s);
  step_ = s.at("step").get<int64_t>();
  apply();
}

// ---- step decay -------------------------------------------------------------------------------

StepDecay::StepDecay(Optimizer& opt, StepDecayConfig cfg) : Scheduler(opt), cfg_(cfg) {
  CHECK(cfg.step_size > 0, "step: step_size must be positive, got {}", cfg.step_size);
  CHECK(cfg.gamma > 0.0, "step: gamma must be positive, got {}", cfg.gamma);
}

void StepDecay::apply() {
  double f = std::pow(cfg_.gamma, static_cast<double>(epochs_ / cfg_.step_size));
  for (size_t g = 0; g < opt_.num_groups(); ++g) opt_.set_lr(g, base_lrs_[g] * f);
}

void StepDecay::on_epoch_end(double /*val_loss*/) {
  ++epochs_;
  apply();
}

json StepDecay::state_dict() const {
  json s = Scheduler::state_dict();
  s["epochs"] = epochs_;
  return s;
}

void StepDecay::load_state_dict(const json& s) {
  Scheduler::load_state_dict(s);
  epochs_ = s.at("epochs").get<int64_t>();
  apply();
}

}  // namespace mt
