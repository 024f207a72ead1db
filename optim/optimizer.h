// Optimizers over parameter groups: AdamW (the seed's), Adam and SGD, with PyTorch's semantics
// and defaults, and a checkpointable state.
//
// Nothing a GPU step needs comes from the host, and nothing it decides goes back to it, so that
// the step queues without waiting and can later be captured in a CUDA graph:
// - The learning rate of each group lives in a one-element float32 tensor on the parameters'
//   device (ParamGroup::lr_tensor): the update kernels read it from there; schedulers change it
//   through set_lr() (a tiny host-to-device copy, once per epoch for the plateau scheduler, once
//   per step for cosine).
// - The step count lives on the device too (counters(), int64: updates applied, steps skipped
//   in all, steps skipped in a row). AdamW's kernel computes its bias corrections 1 - beta^t
//   from it, and a one-thread kernel advances it after the update.
// - The non-finite guard: step(coef, norm) skips the whole update on the device when `norm` is
//   NaN or Inf (weights, moments, momentum buffers and the step count keep their bits) and
//   counts the skip. The trainer is to pass the gradient global norm as this guard
//   (trainer.skip_nonfinite), instead of reading the norm on the host.
//
// Typical step:
//   ClipResult clip = clip_grad_norm(params, 0.5);  // optim/clip.h; device scalars
//   opt.step(clip.coef, clip.norm);  // grads scaled by coef inside the update; skipped if the
//   opt.zero_grad();                 // norm is not finite
//
// step_count(), skip_counts() and state_dict() read the device (they wait for the GPU): call
// them when logging or checkpointing, not every step.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "autograd/var.h"
#include "ops/optim_ops.h"

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
  // float32 tensor on the parameters' device, e.g. the clip coefficient) multiplies every
  // gradient first. `nonfinite_guard` (optional, the same kind of tensor, e.g. the gradient
  // global norm): when it is NaN or Inf, nothing is updated (parameters, moments, momentum
  // buffers and the step count keep their bits) and the skip counters advance instead. Both are
  // read on the device: on the GPU, step() never waits for the GPU. Parameters with no grad are
  // skipped, as in PyTorch.
  void step(const Tensor& grad_scale = Tensor(), const Tensor& nonfinite_guard = Tensor());
  virtual const char* name() const = 0;
  void zero_grad();

  // Host reads of the device counters (each one device-to-host copy, which waits for the GPU):
  // for logs and checkpoints, not for the hot path.
  struct SkipCounts {
    int64_t total = 0;     // steps skipped for a non-finite guard
    int64_t in_a_row = 0;  // ... since the last applied update
  };
  int64_t step_count() const;  // updates applied
  SkipCounts skip_counts() const;
  // int64 [ops::kNumOptimCounters] on the parameters' device: {updates applied, skipped in all,
  // skipped in a row} (ops::OptimCounter names the slots). Its storage never changes, so a
  // captured graph may read it.
  const Tensor& counters() const { return counters_; }

  size_t num_groups() const { return groups_.size(); }
  const ParamGroup& group(size_t i) const;
  double lr(size_t group = 0) const;
  void set_lr(size_t group, double lr);  // updates the group's lr and its device tensor
  void set_lr(double lr);                // every group

  // meta: {"name", "step", "skipped_total", "skipped_in_a_row", "lr": [per group],
  // "weight_decay": [per group]} plus the subclass's hyperparameters; tensors: the
  // per-parameter slots. load_state_dict checks the name and that every slot's shape matches; a
  // state without the skip counters (saved before they existed) loads them as 0.
  virtual StateDict state_dict() const;
  virtual void load_state_dict(const StateDict& state);

 protected:
  // The update itself, queued on the parameters' device; step() checks the arguments before
  // and advances the counters after. `nonfinite_guard` is undefined or as step() describes.
  virtual void update(const Tensor& grad_scale, const Tensor& nonfinite_guard) = 0;
  // The slots of one parameter ("exp_avg", "momentum_buffer", ...), created lazily as zeros.
  Tensor& slot(const std::string& param_name, const std::string& slot, const Tensor& like);
  // The device that holds the counters and the learning rates (the first parameter's).
  Device device() const { return counters_.device(); }
  std::vector<ParamGroup> groups_;
  std::map<std::string, Tensor> slots_;  // "<param>.<slot>" -> tensor

 private:
  Tensor counters_;  // see counters()
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
  const char* name() const override { return "adamw"; }
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;

 protected:
  void update(const Tensor& grad_scale, const Tensor& nonfinite_guard) override;
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
//   buf = g (the parameter's first update) else momentum * buf + (1 - dampening) * g
//   g = g + momentum * buf (nesterov) else buf
//   p -= lr * g
// Composed of elementwise ops; with a guard, every write goes through where(finite, new, old).
class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, SGDConfig cfg = {});
  const char* name() const override { return "sgd"; }
  // The momentum buffers of parameters that have had an applied update (as PyTorch, which
  // creates a buffer at a parameter's first update); reads the device flags below.
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;

 protected:
  void update(const Tensor& grad_scale, const Tensor& nonfinite_guard) override;

 private:
  SGDConfig cfg_;
  // With momentum: float32 [number of parameters] on the device, 1 once the parameter's buffer
  // has had its first applied update, else 0. A buffer starts as zeros when its parameter first
  // has a grad, but whether that step is applied is only known on the device: the flag chooses
  // between PyTorch's first-update rule (buf = g) and the damped one there.
  Tensor momentum_started_;
};

}  // namespace mt
