// Optimizers and schedulers from the config's "optimizer" and "scheduler" sections.
//
//   "optimizer": {
//     "name": "adamw",            "adamw" | "adam" | "sgd"
//     "lr": 1e-3,
//     "weight_decay": 0.01,       default: 0.01 for adamw, 0 for adam and sgd (PyTorch's)
//     "betas": [0.9, 0.999],      adam/adamw
//     "eps": 1e-8,                adam/adamw
//     "momentum": 0, "dampening": 0, "nesterov": false,     sgd
//     "no_decay_norm_bias": false  true: no weight decay on biases and norm weights
//   }
//   "scheduler": {
//     "name": "plateau",          "none" | "plateau" | "cosine" | "step"
//     plateau: "factor": 0.1, "patience": 10, "threshold": 1e-4, "cooldown": 0, "min_lr": 0
//     cosine:  "warmup_steps": 0, "total_steps": (required, or given by the trainer), "min_lr": 0
//     step:    "step_size": 10, "gamma": 0.1
//   }
//     cosine: "total_steps": 0 (or absent) takes make_scheduler's total_steps argument
// Unknown keys, unknown names and bad values are Errors naming "optimizer.<key>" /
// "scheduler.<key>". A known key that the chosen optimizer or scheduler does not use (betas for
// sgd, patience for cosine) is ignored: the trainer's schema fills every key with its default.
// A null value means "the default" (the trainer's schema writes null for keys whose default
// depends on the optimizer or scheduler).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "optim/optimizer.h"
#include "optim/scheduler.h"

namespace mt {

std::unique_ptr<Optimizer> make_optimizer(const nlohmann::json& cfg,
                                          const std::vector<std::pair<std::string, Var>>& named);

// `total_steps` fills the cosine schedule's "total_steps" when the config leaves it out
// (epochs * steps per epoch, which only the trainer knows); pass 0 if unknown.
std::unique_ptr<Scheduler> make_scheduler(const nlohmann::json& cfg, Optimizer& opt,
                                          int64_t total_steps = 0);

}  // namespace mt
