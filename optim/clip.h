// Training-loop helpers: global-norm gradient clipping, gradient accumulation, early stopping.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

#include "autograd/var.h"

namespace mt {

// torch.nn.utils.clip_grad_norm_ split in two so the GPU never syncs: the global L2 norm of all
// defined grads, and the coefficient min(1, max_norm / (norm + 1e-6)), both one-element float32
// tensors on the grads' device. Pass `coef` to Optimizer::step (it scales the grads inside the
// update), or call scale_grads_ to scale them in place.
struct ClipResult {
  Tensor norm;
  Tensor coef;
};
ClipResult clip_grad_norm(const std::vector<Var>& params, double max_norm);
// g *= coef for every defined grad (coef a one-element tensor on their device).
void scale_grads_(const std::vector<Var>& params, const Tensor& coef);

// Gradient accumulation over `steps` micro-batches: scale each micro-batch's loss by
// loss_scale() (= 1 / steps, so the summed grads are the mean), and step the optimizer when
// micro_step() returns true (every `steps`-th call).
class GradAccumulation {
 public:
  explicit GradAccumulation(int steps = 1);
  double loss_scale() const { return 1.0 / steps_; }
  bool micro_step();  // counts one micro-batch; true when it completes a group of `steps`
  int steps() const { return steps_; }
  int position() const { return position_; }  // micro-batches in the current group
  void reset() { position_ = 0; }
  nlohmann::json state_dict() const;
  void load_state_dict(const nlohmann::json& state);

 private:
  int steps_;
  int position_ = 0;
};

// Stops when the validation loss has not improved by more than min_delta for `patience` epochs
// in a row (Keras / Lightning semantics: improved means loss < best - min_delta).
class EarlyStopping {
 public:
  explicit EarlyStopping(int patience = 5, double min_delta = 0.0);
  // Records one epoch's loss; returns true when training should stop.
  bool update(double val_loss);
  bool should_stop() const { return bad_epochs_ >= patience_; }
  bool improved() const { return improved_; }  // did the last update improve?
  double best() const { return best_; }
  int bad_epochs() const { return bad_epochs_; }
  nlohmann::json state_dict() const;
  void load_state_dict(const nlohmann::json& state);

 private:
  int patience_;
  double min_delta_;
  double best_ = std::numeric_limits<double>::infinity();
  int bad_epochs_ = 0;
  bool improved_ = false;
};

}  // namespace mt
