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
#include "training/distributed.h"
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

// Only rank 0 of a data-parallel run writes the run folder.
bool writes_run_folder(const RankSetup* ranks) {
  return ranks != nullptr && ranks->comm ? ranks->comm->rank() == 0
                                         : DistEnv::from_env().is_rank0();
}

// The dropout stream of rank r: rank 0 keeps the run's seed (one process is unchanged), the
// others get their own, so the ranks' masks are independent, as one process's masks are across
// the items of one large batch. Weights are initialized before this, from the common seed.
uint64_t rank_seed(uint64_t seed, int rank) {
  return rank == 0 ? seed : seed ^ (0x9E3779B97F4A7C15ull * static_cast<uint64_t>(rank));
}

}  // namespace

std::string default_run_dir(const std::string& name) { return "runs/" + name + "-" + utc_stamp(); }

Trainer::Trainer(json config, std::string run_dir, std::unique_ptr<RunData> data,
                 const RankSetup* ranks)
    : config_(std::move(config)),
      opts_(TrainerOptions::from_config(config_)),
      run_dir_(std::move(run_dir)),
      data_(std::move(data)),
      log_((fs::path(run_dir_) / "metrics.jsonl").string()) {
  if (ranks != nullptr) comm_ = ranks->comm;
}

Trainer::~Trainer() = default;

std::unique_ptr<Trainer> Trainer::create(const json& config, const std::string& name,
                                         std::unique_ptr<RunData> data, const RankSetup* ranks) {
  const TrainerOptions opts = TrainerOptions::from_config(config);
  const std::string dir = opts.out_dir.empty() ? default_run_dir(name) : opts.out_dir;
  CHECK(!checkpoint_exists(checkpoint_dir(dir, "last")),
        "run folder '{}' already holds a run: continue it with --resume {}, or pick another "
        "trainer.out_dir",
        dir, dir);
  std::unique_ptr<Trainer> t(new Trainer(config, dir, std::move(data), ranks));
  t->build();  // the device, the model and the data: a failure here writes nothing
  if (writes_run_folder(ranks)) t->write_run_folder();
  return t;
}

void Trainer::write_run_folder() {
  make_dirs(run_dir_);
  write_json_file((fs::path(run_dir_) / "config.json").string(), config_);
  // A fresh run starts a fresh log (a folder reused after a run that never checkpointed).
  std::error_code ec;
  fs::remove(fs::path(run_dir_) / "metrics.jsonl", ec);
  // The run keeps its own normalization: `evaluate --data` must not depend on a dataset folder
  // that may since have been prepared again.
  write_normalization(run_dir_, representation_, data_->stats);
  if (!data_->identity.is_null()) {
    write_json_file((fs::path(run_dir_) / "dataset.json").string(), data_->identity);
  }
}

std::unique_ptr<Trainer> Trainer::resume(const std::string& run_dir,
                                         const std::vector<std::string>& overrides,
                                         std::unique_ptr<RunData> data, const RankSetup* ranks,
                                         bool switch_data) {
  const std::string config_path = (fs::path(run_dir) / "config.json").string();
  CHECK(path_exists(config_path), "--resume {}: no config.json there (not a run folder?)", run_dir);
  const json saved = read_json_file(config_path);
  json config = run_schema().resolve(saved, overrides);
  config["trainer"]["out_dir"] = run_dir;
  const bool writer = writes_run_folder(ranks);
  const std::string last = checkpoint_dir(run_dir, "last");
  if (!checkpoint_exists(last)) {
    if (writer) {
      std::printf(
          "[train] %s has no checkpoint (its run stopped before the first one): starting that "
          "run over from its config.json\n",
          run_dir.c_str());
    }
    return create(config, "", std::move(data), ranks);
  }
  std::unique_ptr<Trainer> t(new Trainer(config, run_dir, std::move(data), ranks));
  t->build();
  const DataCheck data_check = t->check_dataset(switch_data);
  t->restore(load_checkpoint(last));
  t->extend_if_asked(run_schema().resolve(saved, {}).at("trainer").at("epochs").get<int>());
  if (t->is_rank0()) t->log_.truncate_after(t->state_.step);
  // Later resumes see the overrides too, when they take effect: a resume with nothing to do
  // leaves config.json as it was. (The other ranks of a data-parallel run resolve the same
  // overrides themselves; the write is atomic, so they read the old or the new file.)
  if (writer && t->has_work()) write_json_file(config_path, config);
  if (writer && data_check != DataCheck::Same) {
    write_json_file((fs::path(run_dir) / "dataset.json").string(), t->data_->identity);
  }
  if (writer && data_check == DataCheck::Switched) {
    write_normalization(run_dir, t->representation_, t->data_->stats);
  }
  return t;
}

Trainer::DataCheck Trainer::check_dataset(bool switch_data) const {
  if (data_->identity.is_null()) return DataCheck::Same;  // in-memory data (tests)
  const std::string path = (fs::path(run_dir_) / "dataset.json").string();
  if (!path_exists(path)) return DataCheck::Unrecorded;  // a run from before dataset.json
  const std::string diff = dataset_difference(read_json_file(path), data_->identity);
  if (diff.empty()) return DataCheck::Same;
  CHECK(switch_data,
        "--resume {}: data.dir '{}' holds other data than this run was trained on:\n{}\n"
        "Prepare the run's data again (its dataset.json names the files), point data.dir at it "
        "(--set data.dir=DIR), or continue on the new data with --switch-data",
        run_dir_, opts_.data_dir, diff);
  if (is_rank0()) {
    std::printf(
        "[train] --switch-data: continuing on other data than the run's so far:\n%s\n"
        "[train] dataset.json and normalization.json now describe the new data, and the test "
        "metrics at the end will be on its test split\n",
        diff.c_str());
  }
  return DataCheck::Switched;
}

void Trainer::extend_if_asked(int saved_epochs) {
  // The run's own trainer.epochs again (a plain resume of a run that early stopping ended) is
  // no request for more.
  if (!state_.finished || opts_.epochs == saved_epochs || state_.epoch >= opts_.epochs) return;
  state_.finished = false;
  if (is_rank0()) {
    std::printf("[train] extending the finished run from %d to %d epochs (trainer.epochs)\n",
                state_.epoch, opts_.epochs);
  }
}

bool Trainer::has_work() const {
  return !state_.finished && !(opts_.max_steps > 0 && state_.step >= opts_.max_steps);
}

void Trainer::build() {
  device_ = Device::parse(opts_.device);
  const DistEnv env = DistEnv::from_env();
  rank_ = comm_ ? comm_->rank() : env.rank;
  world_ = comm_ ? comm_->world() : env.world;
  CHECK(opts_.devices == 1 || opts_.devices == world_,
        "trainer.devices = {} but this process is not one of {} ranks (WORLD_SIZE {}): start "
        "the run with build/bin/train, which launches one process per GPU",
        opts_.devices, opts_.devices, world_);
  if (world_ > 1 && !comm_) {
    CHECK(device_.is_cuda() && device_.index == 0 && opts_.device.rfind("cuda:", 0) != 0,
          "data-parallel training over {} ranks runs on the GPUs (rank r uses GPU LOCAL_RANK): "
          "trainer.device must be 'cuda' or 'auto' with a GPU, got '{}'",
          world_, opts_.device);
    // Before anything touches the GPU: this process's one device. (Tensors keep the label
    // cuda:0, "this process's GPU": one process drives one device.)
    cuda::set_device(env.local_rank);
  }
  if (opts_.threads > 0) omp_set_num_threads(opts_.threads);
  precision_ = parse_precision(opts_.precision);
  representation_ = data::parse_representation(opts_.representation);
  // model.n_inputs 0: the representation's input columns (config.json records the number).
  if (config_.at("model").value("n_inputs", 0) == 0) {
    config_["model"]["n_inputs"] = data::input_count(representation_);
  }
  const ModelConfig mc = ModelConfig::from_json(config_.at("model"));
  delta_target_ = mc.target == "delta";
  gen_ = Generator(opts_.seed);
  model_ = std::make_unique<BTCTransformer>(mc, gen_, kFloat32);
  gen_.set_state(rank_seed(gen_.seed(), rank_), gen_.offset());
  model_->to(device_);
  model_->set_model_precision(precision_);
  model_->set_generator(&gen_);
  model_->train();
  if (!data_) data_ = std::make_unique<RunData>(open_prepared_data(opts_, device_));
  CHECK(data_->representation == representation_,
        "data: the config asks for the {} representation (data.representation) but the data "
        "holds the {} representation: prepare it with `prepare --representation {}` (or make "
        "data PREPARE_ARGS='--representation {}'), or train with a config for {} data",
        data::representation_name(representation_),
        data::representation_name(data_->representation),
        data::representation_name(representation_), data::representation_name(representation_),
        data::representation_name(data_->representation));
  CHECK(mc.input_dim() == data::input_count(representation_) && mc.n_features == data::kTargets,
        "model: the {} representation has {} input columns and {} targets, the model takes {} "
        "and predicts {} (set model.n_inputs = {} and model.n_features = {})",
        data::representation_name(representation_), data::input_count(representation_),
        data::kTargets, mc.input_dim(), mc.n_features, data::input_count(representation_),
        data::kTargets);
  CHECK(!delta_target_ || representation_ == data::Representation::Level,
        "model.target \"delta\" predicts the change of a z-scored level: it needs "
        "data.representation \"level\" (scale_free targets are already relative to this minute)");
  if (world_ > 1) data_->train->set_shard(rank_, world_);
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
  state_.rng_seed = opts_.seed;
  state_.world = world_;
  setup_data_parallel(env);
}

void Trainer::setup_data_parallel(const DistEnv& env) {
  if (world_ == 1) return;
  if (!comm_) comm_ = make_grad_comm(env);
  DataParallelOptions o;
  o.bucket_bytes = static_cast<size_t>(opts_.dp_bucket_kb) << 10;
  o.check_every = opts_.dp_check_every;
  dp_ = std::make_unique<DataParallel>(model_->parameters(), comm_, o);
  dp_->attach_hooks();
  // The ranks built their weights from one seed; a check now catches a rank that did not.
  dp_->check_identical_weights(0);
  if (is_rank0()) {
    std::printf("[dist] %d ranks: %zu gradient buckets of ~%lld KiB, global batch %lld\n", world_,
                dp_->buckets().size(), static_cast<long long>(opts_.dp_bucket_kb),
                static_cast<long long>(opts_.batch_size * opts_.accumulation * world_));
  }
}

void Trainer::sum_over_ranks(std::vector<double>& values) {
  if (comm_) comm_->all_reduce_host(values, cuda::CommOp::Sum);
}

// The loss summed since the last log line, as the mean over the ranks, and the number of applied
// steps among them (the same on every rank): a collective.
void Trainer::flush_pending() {
  std::vector<double> v{pending_loss_.defined() ? pending_loss_.item() : 0.0,
                        pending_applied_.defined() ? pending_applied_.item() : 0.0};
  sum_over_ranks(v);
  state_.pending_loss_sum = v[0] / world_;
  state_.pending_applied = std::llround(v[1] / world_);
}

// Every rank calls it (flush_pending is a collective); rank 0 writes.
void Trainer::save(const std::string& which) {
  flush_pending();
  if (!is_rank0()) return;
  state_.rng_seed = gen_.seed();
  state_.rng_offset = gen_.offset();
  state_.world = world_;
  state_.samples_in_epoch = global_samples(state_.batch_in_epoch, opts_.batch_size, world_);
  state_.scheduler = scheduler_->state_dict();
  state_.early_stopping = early_->state_dict();
  save_checkpoint(checkpoint_dir(run_dir_, which), model_->state_dict(), optimizer_->state_dict(),
                  state_, config_.at("model"));
}

void Trainer::restore(const Checkpoint& ck) {
  model_->load_state_dict(ck.model, /*strict=*/true);
  optimizer_->load_state_dict(ck.optimizer);
  state_ = ck.state;
  if (state_.samples_in_epoch >= 0) {
    // Global progress -> this run's per-rank batch: the same batch when the number of ranks and
    // the batch size are unchanged, else the first whole global batch not yet (fully) seen,
    // rounded up to a whole accumulation group.
    const int acc = opts_.accumulation;
    int64_t b = resume_batch(state_.samples_in_epoch, opts_.batch_size, world_);
    b = std::min((b + acc - 1) / acc * acc, data_->train->batches_per_epoch());
    if ((b != state_.batch_in_epoch || state_.world != world_) && is_rank0()) {
      std::printf(
          "[train] the checkpoint was written by %d rank(s); resuming on %d at batch size %lld: "
          "epoch %d continues after %lld of its windows, at batch %lld of each rank's shard\n",
          state_.world, world_, static_cast<long long>(opts_.batch_size), state_.epoch + 1,
          static_cast<long long>(state_.samples_in_epoch), static_cast<long long>(b));
    }
    state_.batch_in_epoch = b;
  }
  scheduler_->load_state_dict(state_.scheduler);
  early_->load_state_dict(state_.early_stopping);
  gen_.set_state(rank_seed(state_.rng_seed, rank_), state_.rng_offset);
  pending_loss_ = state_.pending_steps > 0
                      ? Tensor::scalar(state_.pending_loss_sum, kFloat32, device_)
                      : Tensor();
  pending_applied_ =
      state_.pending_steps > 0
          ? Tensor::scalar(static_cast<double>(state_.pending_applied), kFloat32, device_)
          : Tensor();
  // Skips the checkpoint's log lines already reported (older checkpoints, whose optimizer state
  // has no skip counters, count from 0 again).
  skipped_logged_ = std::min(state_.nonfinite_total, optimizer_->skip_counts().total);
}

void Trainer::finish() {
  if (!is_rank0() || (!opts_.evaluate && !opts_.plots && !opts_.blend)) return;
  if (opts_.blend) {
    try {
      const EvalSeries val = data_->val_eval
                                 ? *data_->val_eval
                                 : eval_series_from_prepared(opts_.data_dir, data::Split::Val,
                                                             opts_.window, opts_.stride);
      const Blend b = fit_blend(run_dir_, val, device_, opts_.batch_size);
      std::printf(
          "[train] blend with the naive rule, fitted on the validation split: open %.3f, "
          "high %.3f, low %.3f, close %.3f, volume %.3f\n",
          b.weight[0], b.weight[1], b.weight[2], b.weight[3], b.weight[4]);
    } catch (const Error& e) {
      std::printf("[train] blend not fitted: %s\n", e.what());
    }
  }
  if (opts_.evaluate) {
    EvalOptions eo;
    eo.run_dir = run_dir_;
    eo.max_windows = opts_.eval_windows;
    try {
      const json report = evaluate_run(eo, data_.get());
      for (const auto& line : report.at("summary")) {
        std::printf("[test] %s\n", line.get<std::string>().c_str());
      }
      std::printf("[train] test metrics: %s/metrics.md\n", run_dir_.c_str());
    } catch (const Error& e) {
      std::printf("[train] evaluation failed: %s\n", e.message().c_str());
    }
  }
  if (opts_.plots) {
    const PlotResult plots = make_plots(run_dir_);
    for (const auto& note : plots.notes) std::printf("[plots] %s\n", note.c_str());
    if (!plots.files.empty()) {
      std::printf("[plots] %zu files in %s/plots\n", plots.files.size(), run_dir_.c_str());
    }
  }
}

}  // namespace mt::training
