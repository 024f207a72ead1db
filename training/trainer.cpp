// Trainer: building a run, saving and restoring it, and the run from start to finish.
// The step and epoch loops are in training/trainer_loop.cpp.
#include "training/trainer.h"

#include <omp.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>

#include "base/error.h"
#include "cuda/runtime.h"
#include "optim/factory.h"
#include "training/evaluate.h"
#include "training/files.h"
#include "training/plots.h"

namespace mt::training {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string utc_stamp() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%d-%H%M%S", &tm);
  return buf;
}

std::string checkpoint_dir(const std::string& run_dir, const std::string& which) {
  return (fs::path(run_dir) / "checkpoints" / which).string();
}

}  // namespace

Trainer::Trainer(json config, std::string run_dir, std::unique_ptr<RunData> data)
    : config_(std::move(config)),
      opts_(TrainerOptions::from_config(config_)),
      run_dir_(std::move(run_dir)),
      data_(std::move(data)),
      log_((fs::path(run_dir_) / "metrics.jsonl").string()) {}

Trainer::~Trainer() = default;

std::unique_ptr<Trainer> Trainer::create(const json& config, const std::string& name,
                                         std::unique_ptr<RunData> data) {
  const TrainerOptions opts = TrainerOptions::from_config(config);
  const std::string dir = opts.out_dir.empty() ? "runs/" + name + "-" + utc_stamp() : opts.out_dir;
  CHECK(!checkpoint_exists(checkpoint_dir(dir, "last")),
        "run folder '{}' already holds a run: continue it with --resume {}, or pick another "
        "trainer.out_dir",
        dir, dir);
  make_dirs(dir);
  write_json_file((fs::path(dir) / "config.json").string(), config);
  // A fresh run starts a fresh log (a folder reused after a run that never checkpointed).
  std::error_code ec;
  fs::remove(fs::path(dir) / "metrics.jsonl", ec);
  std::unique_ptr<Trainer> t(new Trainer(config, dir, std::move(data)));
  t->build();
  // The run keeps its own normalization: `evaluate --data` must not depend on a dataset folder
  // that may since have been prepared again.
  write_normalization(dir, t->data_->stats);
  return t;
}

std::unique_ptr<Trainer> Trainer::resume(const std::string& run_dir,
                                         const std::vector<std::string>& overrides,
                                         std::unique_ptr<RunData> data) {
  const std::string config_path = (fs::path(run_dir) / "config.json").string();
  CHECK(path_exists(config_path), "--resume {}: no config.json there (not a run folder?)", run_dir);
  json config = run_schema().resolve(read_json_file(config_path), overrides);
  config["trainer"]["out_dir"] = run_dir;
  write_json_file(config_path, config);  // later resumes see the overrides too
  std::unique_ptr<Trainer> t(new Trainer(config, run_dir, std::move(data)));
  t->build();
  const std::string last = checkpoint_dir(run_dir, "last");
  CHECK(checkpoint_exists(last), "--resume {}: no checkpoint in {}", run_dir, last);
  t->restore(load_checkpoint(last));
  t->log_.truncate_after(t->state_.step);
  return t;
}

void Trainer::build() {
  device_ = Device::parse(opts_.device);
  if (opts_.threads > 0) omp_set_num_threads(opts_.threads);
  precision_ = parse_precision(opts_.precision);
  const ModelConfig mc = ModelConfig::from_json(config_.at("model"));
  delta_target_ = mc.target == "delta";
  gen_ = Generator(opts_.seed);
  model_ = std::make_unique<BTCTransformer>(mc, gen_, kFloat32);
  model_->to(device_);
  model_->set_model_precision(precision_);
  model_->set_generator(&gen_);
  model_->train();
  if (!data_) data_ = std::make_unique<RunData>(open_prepared_data(opts_, device_));
  CHECK(data_->train->window() == opts_.window,
        "data: the loader's windows have {} rows, data.window is {}", data_->train->window(),
        opts_.window);
  const int64_t steps_per_epoch = data_->train->batches_per_epoch() / opts_.accumulation;
  CHECK(steps_per_epoch >= 1,
        "data: the training split has {} windows of {} rows: not one optimizer step of {} x {} "
        "windows (lower trainer.batch_size or data.window, or prepare more data)",
        data_->train->windows(), opts_.window, opts_.batch_size, opts_.accumulation);
  CHECK(data_->val->windows() >= 1,
        "data: the validation split has no window of {} rows (lower data.window or prepare more "
        "data)",
        opts_.window);
  optimizer_ =
      make_optimizer(section_without_nulls(config_, "optimizer"), model_->named_parameters());
  scheduler_ = make_scheduler(section_without_nulls(config_, "scheduler"), *optimizer_,
                              steps_per_epoch * opts_.epochs);
  // Patience 0 means off: an EarlyStopping that never fires.
  early_ = std::make_unique<EarlyStopping>(
      opts_.early_stopping_patience > 0 ? opts_.early_stopping_patience : 1 << 30,
      opts_.early_stopping_min_delta);
  loss_weights_ =
      Tensor::from_doubles(opts_.loss_weights, {static_cast<int64_t>(opts_.loss_weights.size())})
          .to(device_);
  state_ = TrainerState{};
  state_.rng_seed = gen_.seed();
}

void Trainer::flush_pending() {
  state_.pending_loss_sum = pending_loss_.defined() ? pending_loss_.item() : 0.0;
}

void Trainer::save(const std::string& which) {
  flush_pending();
  state_.rng_seed = gen_.seed();
  state_.rng_offset = gen_.offset();
  state_.scheduler = scheduler_->state_dict();
  state_.early_stopping = early_->state_dict();
  save_checkpoint(checkpoint_dir(run_dir_, which), model_->state_dict(), optimizer_->state_dict(),
                  state_, config_.at("model"));
}

void Trainer::restore(const Checkpoint& ck) {
  model_->load_state_dict(ck.model, /*strict=*/true);
  optimizer_->load_state_dict(ck.optimizer);
  state_ = ck.state;
  scheduler_->load_state_dict(state_.scheduler);
  early_->load_state_dict(state_.early_stopping);
  gen_.set_state(state_.rng_seed, state_.rng_offset);
  pending_loss_ = state_.pending_steps > 0
                      ? Tensor::scalar(state_.pending_loss_sum, kFloat32, device_)
                      : Tensor();
}

void Trainer::finish(TrainResult& result) {
  if (!opts_.evaluate && !opts_.plots) return;
  if (opts_.evaluate) {
    EvalOptions eo;
    eo.run_dir = run_dir_;
    eo.max_windows = opts_.eval_windows;
    try {
      const json report = evaluate_run(eo, data_.get());
      std::printf("[train] test metrics: %s/metrics.md\n", run_dir_.c_str());
      (void)report;
    } catch (const Error& e) {
      std::printf("[train] evaluation failed: %s\n", e.what());
    }
  }
  if (opts_.plots) {
    const PlotResult plots = make_plots(run_dir_);
    for (const auto& note : plots.notes) std::printf("[plots] %s\n", note.c_str());
    if (!plots.files.empty()) {
      std::printf("[plots] %zu files in %s/plots\n", plots.files.size(), run_dir_.c_str());
    }
  }
  (void)result;
}

}  // namespace mt::training
