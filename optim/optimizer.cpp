#include "optim/optimizer.h"

#include <set>

#include "autograd/parameter_version.h"
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
    CHECK(g.params[0].device() == groups_[0].params[0].device(),
          "optimizer: group {} is on {}, group 0 on {}: one optimizer updates one device", i,
          g.params[0].device().str(), groups_[0].params[0].device().str());
  }
  counters_ = Tensor::zeros({ops::kNumOptimCounters}, kInt64, groups_[0].params[0].device());
}

void Optimizer::step(const Tensor& grad_scale, const Tensor& nonfinite_guard) {
  for (const auto& [what, t] :
       {std::pair{"grad_scale", &grad_scale}, std::pair{"nonfinite_guard", &nonfinite_guard}}) {
    CHECK(!t->defined() || (t->numel() == 1 && t->dtype() == kFloat32 && t->device() == device()),
          "{}::step: {} must be a one-element float32 tensor on {}, got {}", name(), what,
          device().str(), t->describe());
  }
  update(grad_scale, nonfinite_guard);
  parameters_changed();  // caches of the parameters' values (bf16 weight copies) are stale
  // After every update kernel of the step: they read the count this advances.
  ops::optimizer_counters_advance_(counters_, nonfinite_guard);
}

int64_t Optimizer::step_count() const {
  return counters_.narrow(0, ops::kStepsApplied, 1).to_vector<int64_t>()[0];
}

Optimizer::SkipCounts Optimizer::skip_counts() const {
  static_assert(ops::kSkippedInARow == ops::kSkippedTotal + 1, "the two counters are adjacent");
  const std::vector<int64_t> c = counters_.narrow(0, ops::kSkippedTotal, 2).to_vector<int64_t>();
  return {c[0], c[1]};
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
  const std::vector<int64_t> counters = counters_.to_vector<int64_t>();  // one copy
  s.meta["name"] = name();
  s.meta["step"] = counters[ops::kStepsApplied];
  s.meta["skipped_total"] = counters[ops::kSkippedTotal];
  s.meta["skipped_in_a_row"] = counters[ops::kSkippedInARow];
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
  std::vector<int64_t> counters(ops::kNumOptimCounters);
  counters[ops::kStepsApplied] = s.meta.at("step").get<int64_t>();
  // States saved before the skip counters existed have none: 0.
  counters[ops::kSkippedTotal] = s.meta.value("skipped_total", int64_t(0));
  counters[ops::kSkippedInARow] = s.meta.value("skipped_in_a_row", int64_t(0));
  for (int64_t c : counters) CHECK(c >= 0, "optimizer state: negative step counter {}", c);
  // Into the existing storage: a captured graph keeps reading the same address.
  counters_.copy_(Tensor::from_vector(counters, {ops::kNumOptimCounters}));
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

void AdamW::update(const Tensor& grad_scale, const Tensor& nonfinite_guard) {
  // The updates taken so far, read by the kernel (this update is t = count + 1).
  const Tensor count = counters().narrow(0, ops::kStepsApplied, 1);
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
    ops::adamw_step_(ps, gs, ms, vs, g.lr_tensor, count, h, l2_decay_ ? Tensor() : grad_scale,
                     nonfinite_guard);
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
  if (cfg_.momentum != 0.0) {
    int64_t n = 0;
    for (const auto& g : groups_) n += static_cast<int64_t>(g.params.size());
    momentum_started_ = Tensor::zeros({n}, kFloat32, device());
  }
}

void SGD::update(const Tensor& grad_scale, const Tensor& nonfinite_guard) {
  // With a guard every write keeps the old value unless the guard is finite (a device mask:
  // where() selects, so the old bits survive exactly; multiplying by 0 would not clear a NaN).
  const Tensor ok = nonfinite_guard.defined() ? ops::finite_mask(nonfinite_guard) : Tensor();
  auto store = [&](Tensor& dst, const Tensor& value) {
    dst.copy_(ok.defined() ? ops::where(ok, value, dst) : value);
  };
  int64_t k = 0;  // the parameter's index into momentum_started_
  for (auto& g : groups_) {
    for (size_t i = 0; i < g.params.size(); ++i, ++k) {
      const Var& var = g.params[i];
      if (!var.grad().defined()) continue;
      Tensor p = var.value();
      Tensor d = var.grad();
      if (grad_scale.defined()) d = ops::mul(d, grad_scale.to(d.dtype()));
      if (g.weight_decay != 0.0) d = ops::add(d, ops::mul_scalar(p, g.weight_decay));
      if (cfg_.momentum != 0.0) {
        // PyTorch's first update copies the gradient into the buffer, undamped. The buffer is
        // zeros until then, so momentum * buf + g is exactly g: the flag only picks whether g
        // is damped.
        Tensor& buf = slot(g.names[i], "momentum_buffer", p);
        Tensor started = momentum_started_.narrow(0, k, 1);
        const Tensor damped =
            cfg_.dampening == 0.0
                ? d
                : ops::where(started, ops::mul_scalar(d, 1.0 - cfg_.dampening), d);
        store(buf, ops::add(ops::mul_scalar(buf, cfg_.momentum), damped));
        if (ok.defined()) {
          started.copy_(ops::maximum(started, ok));
        } else {
          started.fill_(1.0);
        }
        d = cfg_.nesterov ? ops::add(d, ops::mul_scalar(buf, cfg_.momentum)) : buf;
      }
      store(p, ops::sub(p, ops::mul(d, g.lr_tensor.to(p.dtype()))));
    }
  }
}

StateDict SGD::state_dict() const {
  StateDict s = Optimizer::state_dict();
  if (momentum_started_.defined()) {
    const std::vector<float> started = momentum_started_.to_vector<float>();  // one copy
    size_t k = 0;
    for (const auto& g : groups_) {
      for (const auto& n : g.names) {
        if (started[k++] == 0.0f) s.tensors.erase(n + ".momentum_buffer");
      }
    }
  }
  s.meta["momentum"] = cfg_.momentum;
  s.meta["dampening"] = cfg_.dampening;
  s.meta["nesterov"] = cfg_.nesterov;
  return s;
}

void SGD::load_state_dict(const StateDict& s) {
  Optimizer::load_state_dict(s);
  if (!momentum_started_.defined()) return;
  // A saved buffer has had its first update (state_dict leaves out the others).
  std::vector<float> started;
  for (const auto& g : groups_) {
    for (const auto& n : g.names) started.push_back(float(slots_.count(n + ".momentum_buffer")));
  }
  momentum_started_.copy_(Tensor::from_vector(started, momentum_started_.shape()));
}

}  // namespace mt
