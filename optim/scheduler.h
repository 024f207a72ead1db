// Learning-rate schedulers. Each one owns nothing but a pointer to its optimizer and writes the
// groups' learning rates through Optimizer::set_lr. The trainer calls both hooks; a scheduler
// ignores the one it does not use:
//   on_step()                after every optimizer step   (warmup + cosine)
//   on_epoch_end(val_loss)   after every validation       (plateau, step decay)
// state_dict()/load_state_dict() round-trip everything a resumed run needs.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "optim/optimizer.h"

namespace mt {

class Scheduler {
 public:
  explicit Scheduler(Optimizer& opt);
  virtual ~Scheduler() = default;
  virtual void on_step() {}
  virtual void on_epoch_end(double /*val_loss*/) {}
  virtual const char* name() const = 0;
  virtual nlohmann::json state_dict() const;
  virtual void load_state_dict(const nlohmann::json& state);

 protected:
  Optimizer& opt_;
  std::vector<double> base_lrs_;  // each group's lr when the scheduler was made
};

// A constant learning rate ("none").
class ConstantLR : public Scheduler {
 public:
  using Scheduler::Scheduler;
  const char* name() const override { return "none"; }
};

struct PlateauConfig {
  double factor = 0.1;      // new_lr = max(lr * factor, min_lr)
  int patience = 10;        // bad epochs tolerated before a reduction
  double threshold = 1e-4;  // relative: better means loss < best * (1 - threshold)
  int cooldown = 0;         // epochs after a reduction during which bad epochs are not counted
  double min_lr = 0.0;
  double eps = 1e-8;  // a reduction smaller than this is skipped
};

// torch.optim.lr_scheduler.ReduceLROnPlateau, mode "min", threshold_mode "rel":
//   if loss < best * (1 - threshold): best = loss, bad = 0  else bad += 1
//   if cooldown_counter > 0: cooldown_counter -= 1, bad = 0
//   if bad > patience: each group's lr = max(lr * factor, min_lr) (if it drops by > eps),
//                      cooldown_counter = cooldown, bad = 0
class ReduceLROnPlateau : public Scheduler {
 public:
  ReduceLROnPlateau(Optimizer& opt, PlateauConfig cfg = {});
  void on_epoch_end(double val_loss) override;
  const char* name() const override { return "plateau"; }
  nlohmann::json state_dict() const override;
  void load_state_dict(const nlohmann::json& state) override;

  double best() const { return best_; }
  int num_bad_epochs() const { return num_bad_epochs_; }
  int cooldown_counter() const { return cooldown_counter_; }

 private:
  PlateauConfig cfg_;
  double best_;  // +inf until the first epoch
  int num_bad_epochs_ = 0;
  int cooldown_counter_ = 0;
  int64_t epochs_ = 0;
};

struct WarmupCosineConfig {
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;  // steps of warmup + decay; past it the lr stays at min_lr
  double min_lr = 0.0;
};

// Linear warmup then cosine decay. The lr used by step s (0-based):
//   s <  warmup: base * (s + 1) / warmup
//   s >= warmup: min_lr + (base - min_lr) * (1 + cos(pi * progress)) / 2,
//                progress = min(1, (s - warmup) / (total - warmup))
// The constructor sets the lr for step 0; on_step() moves to the next step's lr.
class WarmupCosine : public Scheduler {
 public:
  WarmupCosine(Optimizer& opt, WarmupCosineConfig cfg);
  void on_step() override;
  const char* name() const override { return "cosine"; }
  nlohmann::json state_dict() const override;
  void load_state_dict(const nlohmann::json& state) override;

  // The lr of step s for a group whose base lr is `base`.
  double lr_at(int64_t step, double base) const;

 private:
  void apply();
  WarmupCosineConfig cfg_;
  int64_t step_ = 0;
};

struct StepDecayConfig {
  int step_size = 10;  // epochs
  double gamma = 0.1;
};

// torch.optim.lr_scheduler.StepLR stepped once per epoch: after e epochs,
//   lr = base * gamma^(e / step_size)   (integer division)
class StepDecay : public Scheduler {
 public:
  StepDecay(Optimizer& opt, StepDecayConfig cfg);
  void on_epoch_end(double val_loss) override;
  const char* name() const override { return "step"; }
  nlohmann::json state_dict() const override;
  void load_state_dict(const nlohmann::json& state) override;

 private:
  void apply();
  StepDecayConfig cfg_;
  int64_t epochs_ = 0;
};

}  // namespace mt
