#include "optim/factory.h"

#include "base/error.h"
#include "base/json_keys.h"

namespace mt {

using nlohmann::json;

namespace {

template <typename T>
T get_or(const json& j, const char* where, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;  // null: "use the default"
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    FAIL("{}.{}: wrong type ({}: {})", where, key, it->type_name(), it->dump());
  }
}

}  // namespace

std::unique_ptr<Optimizer> make_optimizer(const json& cfg,
                                          const std::vector<std::pair<std::string, Var>>& named) {
  check_known_keys(cfg, "optimizer",
                   {"name", "lr", "weight_decay", "betas", "eps", "momentum", "dampening",
                    "nesterov", "no_decay_norm_bias"});
  const char* w = "optimizer";
  auto name = get_or<std::string>(cfg, w, "name", "adamw");
  CHECK(name == "adamw" || name == "adam" || name == "sgd",
        "optimizer.name: expected \"adamw\", \"adam\" or \"sgd\", got \"{}\"", name);
  double lr = get_or<double>(cfg, w, "lr", 1e-3);
  double wd = get_or<double>(cfg, w, "weight_decay", name == "adamw" ? 1e-2 : 0.0);
  bool no_decay = get_or<bool>(cfg, w, "no_decay_norm_bias", false);
  CHECK(lr >= 0.0, "optimizer.lr: must be >= 0, got {}", lr);
  CHECK(wd >= 0.0, "optimizer.weight_decay: must be >= 0, got {}", wd);
  auto groups = make_param_groups(named, lr, wd, no_decay);
  if (name == "sgd") {
    SGDConfig s;
    s.momentum = get_or<double>(cfg, w, "momentum", 0.0);
    s.dampening = get_or<double>(cfg, w, "dampening", 0.0);
    s.nesterov = get_or<bool>(cfg, w, "nesterov", false);
    return std::make_unique<SGD>(std::move(groups), s);
  }
  AdamConfig a;
  auto betas = get_or<std::vector<double>>(cfg, w, "betas", {0.9, 0.999});
  CHECK(betas.size() == 2, "optimizer.betas: expected two numbers, got {}", betas.size());
  a.beta1 = betas[0];
  a.beta2 = betas[1];
  a.eps = get_or<double>(cfg, w, "eps", 1e-8);
  if (name == "adam") return std::make_unique<Adam>(std::move(groups), a);
  return std::make_unique<AdamW>(std::move(groups), a);
}

std::unique_ptr<Scheduler> make_scheduler(const json& cfg, Optimizer& opt, int64_t total_steps) {
  const char* w = "scheduler";
  CHECK(cfg.is_object(), "scheduler: expected a JSON object, got {}", cfg.type_name());
  // The trainer's schema fills every key with its default, so any name sees all of them; keys
  // another scheduler uses are ignored.
  check_known_keys(cfg, w,
                   {"name", "factor", "patience", "threshold", "cooldown", "min_lr", "warmup_steps",
                    "total_steps", "step_size", "gamma"});
  auto name = get_or<std::string>(cfg, w, "name", "none");
  if (name == "none") {
    return std::make_unique<ConstantLR>(opt);
  }
  if (name == "plateau") {
    PlateauConfig p;
    p.factor = get_or<double>(cfg, w, "factor", p.factor);
    p.patience = get_or<int>(cfg, w, "patience", p.patience);
    p.threshold = get_or<double>(cfg, w, "threshold", p.threshold);
    p.cooldown = get_or<int>(cfg, w, "cooldown", p.cooldown);
    p.min_lr = get_or<double>(cfg, w, "min_lr", p.min_lr);
    return std::make_unique<ReduceLROnPlateau>(opt, p);
  }
  if (name == "cosine") {
    WarmupCosineConfig c;
    c.warmup_steps = get_or<int64_t>(cfg, w, "warmup_steps", 0);
    c.total_steps = get_or<int64_t>(cfg, w, "total_steps", 0);
    if (c.total_steps <= 0) c.total_steps = total_steps;  // 0 in the config: the trainer's count
    c.min_lr = get_or<double>(cfg, w, "min_lr", 0.0);
    CHECK(c.total_steps > 0,
          "scheduler.total_steps: the cosine schedule needs it (or the trainer's step count)");
    return std::make_unique<WarmupCosine>(opt, c);
  }
  if (name == "step") {
    StepDecayConfig s;
    s.step_size = get_or<int>(cfg, w, "step_size", s.step_size);
    s.gamma = get_or<double>(cfg, w, "gamma", s.gamma);
    return std::make_unique<StepDecay>(opt, s);
  }
  FAIL("scheduler.name: expected \"none\", \"plateau\", \"cosine\" or \"step\", got \"{}\"", name);
}

}  // namespace mt
