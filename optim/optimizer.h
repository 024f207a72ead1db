// Optimizers over parameter groups: AdamW (the seed's), Adam and SGD, with PyTorch's semantics
// and defaults, and a checkpointable state.
//
// The learning rate of each group lives in a one-element float32 tensor on the parameters'
// device (ParamGroup::lr_tensor): the update kernels read it from there, so a GPU step never
// waits for the host; schedulers change it through set_lr() (a tiny host-to-device copy, once per
// epoch for the plateau scheduler, once per step for cosine).
//
// Typical step:
//   Tensor coef = clip_coefficient(params, 0.5);     // optim/clip.h; device scalar
//   opt.step(coef);                                   // grads scaled by coef inside the update
//   opt.zero_grad();
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "autograd/var.h"

namespace mt {

// A JSON object plus named tensors: what an optimizer, scheduler or helper saves in a
// checkpoint. Tensors are keyed "<param name>.<slot>" ("layers.0.attn.Wqkv.weight.exp_avg").
struct StateDict {
  nlohmann::json meta = nlohmann::json::object();
  std::map<std::string, Tensor> tensors;
};

struct ParamGroup {
  std::vector<std::string> names;  // parallel to params; used as checkpoint keys
  std::vector<Var> params;
  double lr = 1e-3;
  double weight_decay = 0.0;
  Tensor lr_tensor;  // [1] float32 on the params' device, kept equal to lr
};

// Splits named parameters into groups with `weight_decay`, or, with no_decay_norm_bias, two
// groups: [0] the matrices (dim >= 2) with weight_decay and [1] biases and norm weights (dim 1)
// with 0. An empty group is dropped. All groups start at `lr`.
std::vector<ParamGroup> make_param_groups(const std::vector<std::pair<std::string, Var>>& named,
                                          double lr, double weight_decay,
                                          bool no_decay_norm_bias = false);

class Optimizer {
 public:
  explicit Optimizer(std::vector<ParamGroup> groups);
  virtual ~Optimizer() = default;

  // One update from the parameters' accumulated grads. `grad_scale` (optional, a one-element
  // float32 tensor on the device, e.g. the clip coefficient) multiplies every gradient first.
  // Parameters with no grad are skipped, as in PyTorch.
  virtual void step(const Tensor& grad_scale = Tensor()) = 0;
  virtual const char* name() const = 0;
  void zero_grad();

  int64_t step_count() const { return step_; }
  size_t num_groups() const { return groups_.size(); }
  const ParamGroup& group(size_t i) const;
  double lr(size_t group = 0) const;
  void set_lr(size_t group, double lr);  // updates the group's lr and its device tensor
  void set_lr(double lr);                // every group

  // meta: {"name", "step", "lr": [per group]} plus the subclass's hyperparameters; tensors: the
  // per-parameter slots. load_state_dict checks the name and that every slot's shape matches.
  virtual StateDict state_dict() const;
  virtual void load_state_dict(const StateDict& state);

 protected:
  // The slots of one parameter ("exp_avg", "momentum_buffer", ...), created lazily as zeros.
  Tensor& slot(const std::string& param_name, const std::string& slot, const Tensor& like);
  std::vector<ParamGroup> groups_;
  std::map<std::string, Tensor> slots_;  // "<param>.<slot>" -> tensor
  int64_t step_ = 0;
};

struct AdamConfig {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

// torch.optim.AdamW (defaults lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2):
// decoupled weight decay p -= lr * wd * p, then the bias-corrected Adam update. One fused
// ops::adamw_step_ call per group.
class AdamW : public Optimizer {
 public:
  AdamW(std::vector<ParamGroup> groups, AdamConfig cfg = {});
  void step(const Tensor& grad_scale = Tensor()) override;
  const char* name() const override { return "adamw"; }
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;

 protected:
  // Adam folds weight decay into the gradient instead (L2): true for Adam.
  bool l2_decay_ = false;
  AdamConfig cfg_;
};

// torch.optim.Adam (weight_decay default 0): g += wd * p (L2, coupled), then Adam's update.
class Adam : public AdamW {
 public:
  Adam(std::vector<ParamGroup> groups, AdamConfig cfg = {});
  const char* name() const override { return "adam"; }
};

struct SGDConfig {
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;  // needs momentum > 0 and dampening 0, as in PyTorch
};

// torch.optim.SGD:
//   g = g + wd * p
//   buf = g (first step) else momentum * buf + (1 - dampening) * g
//   g = g + momentum * buf (nesterov) else buf
//   p -= lr * g
class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, SGDConfig cfg = {});
  void step(const Tensor& grad_scale = Tensor()) override;
  const char* name() const override { return "sgd"; }
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;

 private:
  SGDConfig cfg_;
};

}  // namespace mt
