#include "optim/optimizer.h"

#include <set>

#include "base/error.h"
#include "ops/elementwise.h"
#include "ops/optim_ops.h"

namespace mt {

using nlohmann::json;

std::vector<ParamGroup> make_param_groups(const std::vector<std::pair<std::string, Var>>& named,
                                          double lr, double weight_decay, bool no_decay_norm_bias) {
  ParamGroup decay, no_decay;
  decay.lr = no_decay.lr = lr;
  decay.weight_decay = weight_decay;
  no_decay.weight_decay = no_decay_norm_bias ? 0.0 : weight_decay;
  for (const auto& [name, p] : named) {
    // Biases and norm weights are the 1-D parameters; decaying them pulls a norm's gain to 0.
    ParamGroup& g = (no_decay_norm_bias && p.dim() < 2) ? no_decay : decay;
    g.names.push_back(name);
    g.params.push_back(p);
  }
  std::vector<ParamGroup> groups;
  if (!decay.params.empty()) groups.push_back(std::move(decay));
  if (!no_decay.params.empty()) groups.push_back(std::move(no_decay));
  return groups;
}

Optimizer::Optimizer(std::vector<ParamGroup> groups) : groups_(std::move(groups)) {
  CHECK(!groups_.empty(), "optimizer: got no parameter groups");
  std::set<std::string> seen;
  for (size_t i = 0; i < groups_.size(); ++i) {
    ParamGroup& g = groups_[i];
    CHECK(!g.params.empty(), "optimizer: parameter group {} is empty", i);
    CHECK(g.names.size() == g.params.size(), "optimizer: group {} has {} names for {} parameters",
          i, g.names.size(), g.params.size());
    CHECK(g.lr >= 0.0, "optimizer: group {} has a negative lr {}", i, g.lr);
    CHECK(g.weight_decay >= 0.0, "optimizer: group {} has a negative weight_decay {}", i,
          g.weight_decay);
    for (const auto& n : g.names) {
      CHECK(seen.insert(n).second, "optimizer: parameter '{}' appears in two groups", n);
    }
    g.lr_tensor = Tensor::full({1}, g.lr, kFloat32, g.params[0].device());
  }
}

const ParamGroup& Optimizer::group(size_t i) const {
  CHECK(i < groups_.size(), "optimizer: group {} out of range ({} groups)", i, groups_.size());
  return groups_[i];
}

double Optimizer::lr(size_t g) const { return group(g).lr; }

void Optimizer::set_lr(size_t g, double lr) {
  CHECK(g < groups_.size(), "optimizer: group {} out of range ({} groups)", g, groups_.size());
  CHECK(lr >= 0.0, "optimizer: negative lr {}", lr);
  groups_[g].lr = lr;
  groups_[g].lr_tensor.fill_(lr);
}

void Optimizer::set_lr(double lr) {
  for (size_t g = 0; g < groups_.size(); ++g) set_lr(g, lr);
}

void Optimizer::zero_grad() {
  for (auto& g : groups_) {
    for (auto& p : g.params) p.zero_grad();
  }
}

Tensor& Optimizer::slot(const std::string& param_name, const std::string& slot_name,
                        const Tensor& like) {
  Tensor& t = slots_[param_name + "." + slot_name];
  if (!t.defined()) t = Tensor::zeros(like.shape(), like.dtype(), like.device());
  return t;
}

StateDict Optimizer::state_dict() const {
  StateDict s;
  s.meta["name"] = name();
  s.meta["step"] = step_;
  json lrs = json::array(), wds = json::array();
  for (const auto& g : groups_) {
    lrs.push_back(g.lr);
    wds.push_back(g.weight_decay);
  }
  s.meta["lr"] = lrs;
  s.meta["weight_decay"] = wds;
  s.tensors = slots_;
  return s;
}

void Optimizer::load_state_dict(const StateDict& s) {
  CHECK(s.meta.value("name", std::string()) == name(),
        "optimizer state: saved by '{}', loading into '{}'", s.meta.value("name", "?"), name());
  const json& lrs = s.meta.at("lr");
  CHECK(lrs.size() == groups_.size(), "optimizer state: {} groups saved, the optimizer has {}",
        lrs.size(), groups_.size());
  std::map<std::string, const Tensor*> by_name;
  for (const auto& g : groups_) {
    for (size_t i = 0; i < g.params.size(); ++i) by_name[g.names[i]] = &g.params[i].value();
  }
  std::map<std::string, Tensor> slots;
  for (const auto& [key, t] : s.tensors) {
    size_t dot = key.rfind('.');
    CHECK(dot != std::string::npos, "optimizer state: bad slot key '{}'", key);
    auto it = by_name.find(key.substr(0, dot));
    CHECK(it != by_name.end(), "optimizer state: slot '{}' names no parameter of the model", key);
    const Tensor& p = *it->second;
    CHECK(t.shape() == p.shape(), "optimizer state: slot '{}' has shape {}, the parameter {}", key,
          shape_str(t.shape()), shape_str(p.shape()));
    slots[key] = t.to(p.dtype()).to(p.device()).clone();
  }
  step_ = s.meta.at("step").get<int64_t>();
  slots_ = std::move(slots);
  for (size_t g = 0; g < groups_.size(); ++g) {
    set_lr(g, lrs[g].get<double>());
    groups_[g].weight_decay = s.meta.at("weight_decay")[g].get<double>();
  }
}

// ---- AdamW / Adam -----------------------------------------------------------------------------

AdamW::AdamW(std::vector<ParamGroup> groups, AdamConfig cfg)
    : Optimizer(std::move(groups)), cfg_(cfg) {
  CHECK(cfg.beta1 >= 0.0 && cfg.beta1 < 1.0, "adamw: beta1 must be in [0, 1), got {}", cfg.beta1);
  CHECK(cfg.beta2 >= 0.0 && cfg.beta2 < 1.0, "adamw: beta2 must be in [0, 1), got {}", cfg.beta2);
  CHECK(cfg.eps >= 0.0, "adamw: eps must be >= 0, got {}", cfg.eps);
}

void AdamW::step(const Tensor& grad_scale) {
  ++step_;
  for (auto& g : groups_) {
    std::vector<Tensor> ps, gs, ms, vs;
    for (size_t i = 0; i < g.params.size(); ++i) {
      const Var& p = g.params[i];
      if (!p.grad().defined()) continue;
      Tensor grad = p.grad();
      if (l2_decay_) {
        // Adam's coupled L2 decay enters the gradient after clipping: g = g * s + wd * p.
        if (grad_scale.defined()) grad = ops::mul(grad, grad_scale.to(grad.dtype()));
        if (g.weight_decay != 0.0) {
          grad = ops::add(grad, ops::mul_scalar(p.value(), g.weight_decay));
        }
      }
      ps.push_back(p.value());
      gs.push_back(grad);
      ms.push_back(slot(g.names[i], "exp_avg", p.value()));
      vs.push_back(slot(g.names[i], "exp_avg_sq", p.value()));
    }
    if (ps.empty()) continue;
    ops::AdamWHyper h;
    h.beta1 = static_cast<float>(cfg_.beta1);
    h.beta2 = static_cast<float>(cfg_.beta2);
    h.eps = static_cast<float>(cfg_.eps);
    h.weight_decay = l2_decay_ ? 0.0f : static_cast<float>(g.weight_decay);
    ops::adamw_step_(ps, gs, ms, vs, g.lr_tensor, step_, h, l2_decay_ ? Tensor() : grad_scale);
  }
}

StateDict AdamW::state_dict() const {
  StateDict s = Optimizer::state_dict();
  s.meta["betas"] = {cfg_.beta1, cfg_.beta2};
  s.meta["eps"] = cfg_.eps;
  return s;
}

void AdamW::load_state_dict(const StateDict& s) {
  Optimizer::load_state_dict(s);
  if (s.meta.contains("betas")) {
    cfg_.beta1 = s.meta["betas"][0].get<double>();
    cfg_.beta2 = s.meta["betas"][1].get<double>();
  }
  if (s.meta.contains("eps")) cfg_.eps = s.meta["eps"].get<double>();
}

Adam::Adam(std::vector<ParamGroup> groups, AdamConfig cfg) : AdamW(std::move(groups), cfg) {
  l2_decay_ = true;
}

// ---- SGD --------------------------------------------------------------------------------------

SGD::SGD(std::vector<ParamGroup> groups, SGDConfig cfg) : Optimizer(std::move(groups)), cfg_(cfg) {
  CHECK(cfg.momentum >= 0.0, "sgd: momentum must be >= 0, got {}", cfg.momentum);
  CHECK(!cfg.nesterov || (cfg.momentum > 0.0 && cfg.dampening == 0.0),
        "sgd: nesterov needs momentum > 0 and dampening 0, got momentum {} dampening {}",
        cfg.momentum, cfg.dampening);
}

void SGD::step(const Tensor& grad_scale) {
  ++step_;
  for (auto& g : groups_) {
    for (size_t i = 0; i < g.params.size(); ++i) {
      const Var& var = g.params[i];
      if (!var.grad().defined()) continue;
      Tensor p = var.value();
      Tensor d = var.grad();
      if (grad_scale.defined()) d = ops::mul(d, grad_scale.to(d.dtype()));
      if (g.weight_decay != 0.0) d = ops::add(d, ops::mul_scalar(p, g.weight_decay));
      if (cfg_.momentum != 0.0) {
        std::string key = g.names[i] + ".momentum_buffer";
        auto it = slots_.find(key);
        if (it == slots_.end()) {
          // PyTorch's first step copies the gradient into the buffer, undamped.
          it = slots_.emplace(key, d.clone()).first;
        } else {
          it->second.copy_(ops::add(ops::mul_scalar(it->second, cfg_.momentum),
                                    ops::mul_scalar(d, 1.0 - cfg_.dampening)));
        }
        d = cfg_.nesterov ? ops::add(d, ops::mul_scalar(it->second, cfg_.momentum)) : it->second;
      }
      p.copy_(ops::sub(p, ops::mul(d, g.lr_tensor.to(p.dtype()))));
    }
  }
}

StateDict SGD::state_dict() const {
  StateDict s = Optimizer::state_dict();
  s.meta["momentum"] = cfg_.momentum;
  s.meta["dampening"] = cfg_.dampening;
  s.meta["nesterov"] = cfg_.nesterov;
  return s;
}

void SGD::load_state_dict(const StateDict& s) { Optimizer::load_state_dict(s); }

}  // namespace mt
