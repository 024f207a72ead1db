// The training loop proper: one micro-batch, one optimizer step, one epoch, validation, and
// fit() around them. Trainer's construction and checkpoints are in training/trainer.cpp.
#include <cmath>
#include <cstdio>

#include "autograd/functions_basic.h"
#include "autograd/functions_nn.h"
#include "base/error.h"
#include "cuda/nvtx.h"
#include "ops/elementwise.h"
#include "ops/loss.h"
#include "ops/optim_ops.h"
#include "training/distributed.h"
#include "training/interrupt.h"
#include "training/progress.h"
#include "training/trainer.h"

namespace mt::training {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

// Position t of a window forecasts minute t + 1. Level representation: the batch holds the five
// z-scored levels, and the targets of positions 0 .. T-2 are the window's own next rows:
//   level: x[:, 1:]                 (the seed: the next minute's normalized values)
//   delta: x[:, 1:] - x[:, :-1]     (the change from this minute; float32, see issue 4)
// Scale-free representation: the batch holds the inputs, then the stored targets of each row
// (data/representation.h), so every one of the T positions has its target.
int64_t Trainer::forecast_positions(int64_t T) const {
  return representation_ == data::Representation::Level ? T - 1 : T;
}

Tensor Trainer::inputs_of(const Tensor& batch) const {
  if (representation_ == data::Representation::Level) return batch;
  return batch.narrow(2, 0, data::input_count(representation_)).contiguous();
}

Tensor Trainer::target_of(const Tensor& batch) const {
  const int64_t T = batch.size(1);
  if (representation_ == data::Representation::ScaleFree) {
    return batch.narrow(2, data::input_count(representation_), data::kTargets);
  }
  Tensor next = batch.narrow(1, 1, T - 1);
  return delta_target_ ? ops::sub(next, batch.narrow(1, 0, T - 1)) : next;
}

Var Trainer::loss_of(const Var& pred, const Tensor& target) const {
  if (opts_.loss == "mse") return mse_loss(pred, Var(target));
  return smooth_l1_loss(pred, Var(target), static_cast<float>(opts_.loss_beta), loss_weights_);
}

Tensor Trainer::micro_step(const Tensor& batch) {
  const int64_t T = batch.size(1);
  Var pred;
  {
    cuda::NvtxRange range("forward");
    pred = narrow((*model_)(Var(inputs_of(batch))), 1, 0, forecast_positions(T));
  }
  Var loss;
  {
    cuda::NvtxRange range("loss");
    loss = loss_of(pred, target_of(batch));
    // Accumulated micro-batches sum their gradients: 1/k each makes the sum their mean.
    if (opts_.accumulation > 1) loss = mul_scalar(loss, 1.0 / opts_.accumulation);
  }
  {
    cuda::NvtxRange range("backward");
    loss.backward();
  }
  return loss.value();
}

Tensor Trainer::optimizer_step() {
  cuda::NvtxRange range("optimizer");
  // Data-parallel: the gradients become the mean over the ranks before anything reads them, so
  // every rank computes the same norm, takes the same skip decision and the same update.
  if (dp_) dp_->finish_gradients();
  const std::vector<Var> params = model_->parameters();
  Tensor coef, guard;
  if (opts_.clip > 0 || opts_.skip_nonfinite) {
    const ClipResult clip = clip_grad_norm(params, opts_.clip > 0 ? opts_.clip : INFINITY);
    if (opts_.clip > 0) coef = clip.coef;
    // A NaN or Inf gradient must not reach the weights or the Adam moments: the optimizer
    // skips the update on the device when the norm is not finite (no host read).
    if (opts_.skip_nonfinite) guard = clip.norm;
  }
  optimizer_->step(coef, guard);
  optimizer_->zero_grad();
  return guard;
}

void Trainer::run_step(const std::vector<Tensor>& batches, Tensor& group_loss, Tensor& guard) {
  group_loss = Tensor();
  for (size_t i = 0; i < batches.size(); ++i) {
    // Data-parallel: only the last micro-batch of a group averages the gradients.
    if (dp_) dp_->set_sync(i + 1 == batches.size());
    const Tensor loss = micro_step(batches[i]);
    group_loss = group_loss.defined() ? ops::add(group_loss, loss) : loss;
  }
  guard = optimizer_step();
}

bool Trainer::uses_cuda_graph() const {
  return opts_.cuda_graph && device_.is_cuda() && !dp_ && opts_.profile_steps == 0;
}

void Trainer::run_step_graph(const std::vector<Tensor>& batches, Tensor& group_loss,
                             Tensor& guard) {
  if (!step_graph_) step_graph_ = std::make_unique<StepGraph>(gen_, device_);
  bool same_shapes = graph_batches_.size() == batches.size();
  for (size_t i = 0; same_shapes && i < batches.size(); ++i) {
    same_shapes = graph_batches_[i].shape() == batches[i].shape() &&
                  graph_batches_[i].dtype() == batches[i].dtype();
  }
  if (!same_shapes) {
    // New input tensors: a graph that reads the old ones cannot serve (the next run() is an
    // eager step again, then a new capture).
    step_graph_->drop();
    graph_batches_.clear();
    for (const Tensor& b : batches) graph_batches_.push_back(b.contiguous().clone());
  } else {
    for (size_t i = 0; i < batches.size(); ++i) graph_batches_[i].copy_(batches[i]);
  }
  step_graph_->run([&] { run_step(graph_batches_, graph_loss_, graph_guard_); });
  group_loss = graph_loss_;
  guard = graph_guard_;
}

// Adds a step's loss to the pending sum, on the device. A skipped step's loss (likely NaN) is
// selected out by where(), not multiplied by 0 (NaN * 0 is NaN), and not counted as applied.
void Trainer::accumulate_pending(const Tensor& group_loss, const Tensor& guard) {
  if (!zero_.defined() || zero_.dtype() != group_loss.dtype()) {  // made once, not per step
    zero_ = Tensor::zeros({}, group_loss.dtype(), device_);
    one_ = Tensor::ones({}, kFloat32, device_);
  }
  Tensor loss = group_loss, applied = one_;
  if (guard.defined()) {
    applied = ops::finite_mask(guard).reshape({});
    loss = ops::where(applied, group_loss, zero_);
  }
  // (A copy when it starts: a CUDA graph's replays rewrite the loss tensor it leaves.)
  pending_loss_ = pending_loss_.defined() ? ops::add(pending_loss_, loss) : loss.clone();
  pending_applied_ = pending_applied_.defined() ? ops::add(pending_applied_, applied) : applied;
}

// The skips since the last log line, from the optimizer's device counters (one 24-byte read).
void Trainer::note_skips(TrainResult& result, Progress& progress) {
  const Optimizer::SkipCounts skips = optimizer_->skip_counts();
  const int64_t fresh = skips.total - skipped_logged_;
  skipped_logged_ = skips.total;
  state_.nonfinite_in_a_row = skips.in_a_row;
  if (fresh <= 0) return;
  state_.nonfinite_total += fresh;
  result.nonfinite_skipped += fresh;
  if (!is_rank0()) return;
  log_.append(json{{"kind", "skip"},
                   {"epoch", state_.epoch},
                   {"step", state_.step},
                   {"reason", "non-finite gradient norm"},
                   {"skipped", fresh},
                   {"in_a_row", state_.nonfinite_in_a_row}});
  progress.finish();
  std::printf(
      "[train] %lld step(s) up to step %lld skipped: non-finite gradient norm (%lld in a row, "
      "%lld in all)\n",
      static_cast<long long>(fresh), static_cast<long long>(state_.step),
      static_cast<long long>(state_.nonfinite_in_a_row),
      static_cast<long long>(state_.nonfinite_total));
}

// Reads the summed loss of the steps since the last log line (the host sync of a GPU run), the
// number of them applied and the skip counters, and writes the line. Returns false when the mean
// loss of the applied steps is not finite (a NaN with trainer.skip_nonfinite off).
// Data-parallel: the loss is the mean over the ranks and a stop request (Ctrl-C, SIGTERM) is
// agreed on here, in one small all-reduce, so that every rank stops after the same step.
bool Trainer::log_train(TrainResult& result, Progress& progress, int64_t step_in_epoch) {
  if (state_.pending_steps == 0) return true;
  std::vector<double> shared{pending_loss_.item(), pending_applied_.item(),
                             interrupt_requested() ? 1.0 : 0.0};
  sum_over_ranks(shared);
  const double sum = shared[0] / world_;
  const int64_t applied = std::llround(shared[1] / world_);
  stop_agreed_ = shared[2] > 0;
  note_skips(result, progress);
  const double loss = applied > 0 ? sum / static_cast<double>(applied) : 0.0;
  const double seconds = seconds_since(last_log_);
  const double tokens_per_s =
      seconds > 0 ? static_cast<double>(tokens_since_log_ * world_) / seconds : 0;
  const double lr = optimizer_->lr();
  if (applied > 0) {  // every step since the last line skipped: no loss to report
    state_.epoch_loss_sum += sum;
    state_.epoch_loss_count += applied;
    if (is_rank0()) {
      log_.append(json{{"kind", "train"},
                       {"epoch", state_.epoch},
                       {"step", state_.step},
                       {"loss", std::isfinite(loss) ? json(loss) : json(nullptr)},
                       {"lr", lr},
                       {"tokens_per_s", tokens_per_s},
                       {"time_s", state_.elapsed_s + seconds_since(session_start_)}});
    }
    progress.update(step_in_epoch, loss, lr, tokens_per_s);
    result.logged_losses.emplace_back(state_.step, loss);
  }
  pending_loss_ = Tensor();
  pending_applied_ = Tensor();
  state_.pending_steps = 0;
  state_.pending_applied = 0;
  state_.pending_loss_sum = 0;
  tokens_since_log_ = 0;
  last_log_ = Clock::now();
  return std::isfinite(loss);
}

// Runs the rest of the current epoch. Returns "" at its end, or why it stopped early.
std::string Trainer::train_epoch(TrainResult& result) {
  cuda::NvtxRange epoch_range("epoch");
  SplitLoader& loader = *data_->train;
  const int acc = opts_.accumulation;
  const int64_t steps_in_epoch = loader.batches_per_epoch() / acc;
  // Micro-batches left over after the last whole group are not used (a partial group would
  // step with a differently scaled gradient).
  const int64_t usable = steps_in_epoch * acc;
  loader.start_epoch(state_.epoch, state_.batch_in_epoch);
  Progress progress(is_rank0() ? parse_progress_mode(opts_.progress) : ProgressMode::Quiet,
                    state_.epoch, opts_.epochs, steps_in_epoch);
  // A trainer.max_steps that ends the run inside this epoch: the line counts toward it instead.
  const int64_t steps_before_epoch = state_.step - state_.batch_in_epoch / acc;
  if (opts_.max_steps > 0 && opts_.max_steps < steps_before_epoch + steps_in_epoch) {
    progress.set_step_limit(steps_before_epoch, opts_.max_steps);
  }
  last_log_ = Clock::now();
  std::vector<Tensor> batches(static_cast<size_t>(acc));
  while (state_.batch_in_epoch + acc <= usable) {
    // Checked before a step, not after: a limit on an epoch's last step lets the epoch end
    // (validation, scheduler, checkpoints) as usual.
    if (opts_.max_steps > 0 && state_.step >= opts_.max_steps) {
      progress.finish();
      return "max_steps";
    }
    profiler_.begin_step();
    {
      cuda::NvtxRange range("data");
      for (int i = 0; i < acc; ++i) {
        CHECK(loader.next(batches[i]), "data: the training loader ended at batch {} of {}",
              state_.batch_in_epoch + i, usable);
      }
    }
    Tensor group_loss, guard;
    if (uses_cuda_graph()) {
      run_step_graph(batches, group_loss, guard);
    } else {
      run_step(batches, group_loss, guard);
    }
    scheduler_->on_step();  // outside the graph: its lr reaches the optimizer's device tensor
    for (const Tensor& b : batches) tokens_since_log_ += b.size(0) * b.size(1);
    state_.batch_in_epoch += acc;
    profiler_.end_step();
    ++state_.step;
    if (dp_ && dp_->should_check(state_.step)) dp_->check_identical_weights(state_.step);
    accumulate_pending(group_loss, guard);
    ++state_.pending_steps;
    const int64_t step_in_epoch = state_.batch_in_epoch / acc;
    const bool last_step = opts_.max_steps > 0 && state_.step >= opts_.max_steps;
    if (state_.pending_steps >= opts_.log_every || step_in_epoch == steps_in_epoch || last_step) {
      if (!log_train(result, progress, step_in_epoch)) return "nonfinite";
      if (state_.nonfinite_in_a_row >= opts_.max_nonfinite) return "nonfinite";
    }
    if (opts_.checkpoint_every > 0 && state_.step % opts_.checkpoint_every == 0) save("last");
    // One process stops at once; the ranks of a data-parallel run stop at the log line where
    // they agreed to (a rank stopping alone would leave the others waiting in an all-reduce).
    if (world_ == 1 ? interrupt_requested() : stop_agreed_) {
      progress.finish();
      return "interrupted";
    }
  }
  progress.finish();
  return "";
}

// The mean loss per window over the validation split, in eval mode (no dropout), no graph.
double Trainer::validate() {
  cuda::NvtxRange range("validate");
  NoGradGuard no_grad;
  model_->eval();
  SplitLoader& loader = *data_->val;
  loader.start_epoch(0);
  Tensor batch, total;
  int64_t windows = 0, batches = 0;
  while (loader.next(batch)) {
    const int64_t B = batch.size(0), T = batch.size(1);
    const Var pred = narrow((*model_)(Var(inputs_of(batch))), 1, 0, forecast_positions(T));
    const Tensor loss =
        ops::mul_scalar(loss_of(pred, target_of(batch)).value(), static_cast<double>(B));
    total = total.defined() ? ops::add(total, loss) : loss;
    windows += B;
    if (opts_.val_batches > 0 && ++batches >= opts_.val_batches) break;
  }
  model_->train();
  return total.item() / static_cast<double>(windows);
}

// The model at a max_steps stop in mid-epoch is the run's result: validated like an epoch's, and
// kept as "best" when it is. The scheduler and early stopping are left alone (they count epochs),
// so that a resumed run goes on exactly as an uninterrupted one.
void Trainer::validate_at_stop() {
  std::vector<double> val{is_rank0() ? validate() : 0.0};  // as in end_epoch: rank 0's loss
  sum_over_ranks(val);
  const double val_loss = val[0];
  const bool best = std::isfinite(val_loss) && val_loss < state_.best_val_loss;
  if (best) {
    state_.best_val_loss = val_loss;
    state_.best_epoch = state_.epoch;
  }
  if (is_rank0()) {
    log_.append(json{{"kind", "val"},
                     {"epoch", state_.epoch},
                     {"step", state_.step},
                     {"val_loss", std::isfinite(val_loss) ? json(val_loss) : json(nullptr)},
                     {"best", best},
                     {"time_s", state_.elapsed_s + seconds_since(session_start_)}});
    std::printf("[train] step %lld (in epoch %d/%d)  val %.6g%s\n",
                static_cast<long long>(state_.step), state_.epoch + 1, opts_.epochs, val_loss,
                best ? " (best)" : "");
    std::fflush(stdout);
  }
  if (best) save("best");
}

// Validation, scheduler, early stopping and checkpoints after the last step of an epoch.
// Returns "early_stopping" or "".
std::string Trainer::end_epoch(TrainResult& result, double epoch_seconds) {
  // Rank 0 validates; the others receive its loss (a sum with their zeros), so that the
  // scheduler and early stopping take the same decision on every rank.
  std::vector<double> val{is_rank0() ? validate() : 0.0};
  sum_over_ranks(val);
  const double val_loss = val[0];
  const double train_loss =
      state_.epoch_loss_count > 0
          ? state_.epoch_loss_sum / static_cast<double>(state_.epoch_loss_count)
          : NAN;
  scheduler_->on_epoch_end(val_loss);
  const bool stop = early_->update(val_loss);
  const bool best = std::isfinite(val_loss) && val_loss < state_.best_val_loss;
  if (best) {
    state_.best_val_loss = val_loss;
    state_.best_epoch = state_.epoch;
  }
  if (is_rank0()) {
    log_.append(json{{"kind", "epoch"},
                     {"epoch", state_.epoch},
                     {"step", state_.step},
                     {"train_loss", std::isfinite(train_loss) ? json(train_loss) : json(nullptr)},
                     {"val_loss", std::isfinite(val_loss) ? json(val_loss) : json(nullptr)},
                     {"lr", optimizer_->lr()},
                     {"best", best},
                     {"time_s", state_.elapsed_s + seconds_since(session_start_)}});
    std::printf("[train] epoch %d/%d  train %.6g  val %.6g%s  lr %.3g  %s\n", state_.epoch + 1,
                opts_.epochs, train_loss, val_loss, best ? " (best)" : "", optimizer_->lr(),
                format_duration(epoch_seconds).c_str());
    std::fflush(stdout);
  }
  result.val_losses.push_back(val_loss);
  ++result.epochs_done;
  state_.epoch += 1;
  state_.batch_in_epoch = 0;
  state_.epoch_loss_sum = 0;
  state_.epoch_loss_count = 0;
  if (best) save("best");
  save("last");
  return stop ? "early_stopping" : "";
}

void Trainer::print_header() const {
  std::printf("[train] run %s on %s, %s, %s representation, target %s, loss %s\n", run_dir_.c_str(),
              device_.str().c_str(), precision_name(precision_),
              data::representation_name(representation_), delta_target_ ? "delta" : "level",
              opts_.loss.c_str());
  std::printf("[train] %s\n", data_->description.c_str());
  std::printf("[train] %lld parameters; %lld optimizer steps per epoch%s\n",
              static_cast<long long>(model_->num_parameters()),
              static_cast<long long>(data_->train->batches_per_epoch() / opts_.accumulation),
              world_ > 1 ? fmt::format(" (each of {} ranks)", world_).c_str() : "");
  if (uses_cuda_graph()) {
    std::printf(
        "[train] the step runs as one CUDA graph, captured at its second step "
        "(trainer.cuda_graph=false: kernel by kernel)\n");
  }
  if (state_.step > 0 || state_.epoch > 0) {
    std::printf("[train] resuming at epoch %d, batch %lld, step %lld\n", state_.epoch + 1,
                static_cast<long long>(state_.batch_in_epoch), static_cast<long long>(state_.step));
  }
}

void Trainer::say_nothing_to_do() const {
  const char* where = state_.finished ? "already finished" : "already at its trainer.max_steps";
  const char* how = state_.finished ? "to train longer, resume it with SET=trainer.epochs=N (N > "
                                      "the epochs done)"
                                    : "to train further, resume it with SET=trainer.max_steps=N "
                                      "(0: no limit)";
  std::printf("[train] %s is %s (%d epochs done, %lld steps): nothing to do; %s\n",
              run_dir_.c_str(), where, state_.epoch, static_cast<long long>(state_.step), how);
}

void Trainer::stop_at_max_steps() {
  if (state_.batch_in_epoch > 0) validate_at_stop();  // at an epoch's end, end_epoch did it
  save("last");
  if (is_rank0()) {
    std::printf(
        "[train] stopped at trainer.max_steps = %lld (epoch %d/%d); best val loss %.6g. Train "
        "further with: make train RESUME=%s SET=trainer.max_steps=N (0: no limit)\n",
        static_cast<long long>(opts_.max_steps), state_.epoch + (state_.batch_in_epoch > 0),
        opts_.epochs, state_.best_val_loss, run_dir_.c_str());
  }
  finish();
}

TrainResult Trainer::fit() {
  TrainResult result;
  result.run_dir = run_dir_;
  result.steps = state_.step;
  result.best_val_loss = state_.best_val_loss;
  if (!has_work()) {  // a resumed run that is already done: nothing is run, nothing written
    if (is_rank0()) say_nothing_to_do();
    result.stop_reason = "nothing_to_do";
    return result;
  }
  session_start_ = Clock::now();
  if (is_rank0()) print_header();
  profiler_.configure(is_rank0() ? opts_.profile_steps : 0, device_.is_cuda(), run_dir_);
  std::string stop;
  while (stop.empty() && state_.epoch < opts_.epochs) {
    const Clock::time_point epoch_start = Clock::now();
    stop = train_epoch(result);
    if (stop.empty()) stop = end_epoch(result, seconds_since(epoch_start));
    if (stop.empty() && opts_.max_steps > 0 && state_.step >= opts_.max_steps &&
        state_.epoch < opts_.epochs) {
      stop = "max_steps";
    }
  }
  if (stop.empty()) stop = "finished";
  // The captured step is done with: its memory goes back before the evaluation.
  step_graph_.reset();
  graph_batches_.clear();
  graph_loss_ = graph_guard_ = Tensor();
  result.stop_reason = stop;
  result.steps = state_.step;
  // The session's time so far goes into the checkpoint; what follows (a stop's validation, the
  // evaluation) counts from here.
  state_.elapsed_s += seconds_since(session_start_);
  session_start_ = Clock::now();
  if (stop == "nonfinite") {
    // The weights may hold the bad values: keep the checkpoints already on disk as they are.
    if (is_rank0()) {
      std::printf(
          "[train] stopped: %lld non-finite steps in a row (limit trainer.max_nonfinite = "
          "%lld). Checkpoints left untouched; the last good one is %s/checkpoints/last\n",
          static_cast<long long>(state_.nonfinite_in_a_row),
          static_cast<long long>(opts_.max_nonfinite), run_dir_.c_str());
    }
    return result;
  }
  // Data-parallel: the last word on the ranks' agreement, before the final checkpoint.
  if (dp_) dp_->check_identical_weights(state_.step);
  if (stop == "interrupted") {
    save("last");
    if (is_rank0()) {
      std::printf("[train] interrupted at step %lld; continue with: make train RESUME=%s\n",
                  static_cast<long long>(state_.step), run_dir_.c_str());
    }
  } else if (stop == "max_steps") {
    stop_at_max_steps();
  } else {
    state_.finished = true;
    save("last");
    if (is_rank0()) {
      std::printf("[train] %s after %d epochs, %lld steps; best val loss %.6g (epoch %d)\n",
                  stop.c_str(), state_.epoch, static_cast<long long>(state_.step),
                  state_.best_val_loss, state_.best_epoch + 1);
    }
    finish();
  }
  result.best_val_loss = state_.best_val_loss;
  return result;
}

}  // namespace mt::training
