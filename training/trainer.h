// The training loop: a BTCTransformer, its optimizer and scheduler, the data, and the run folder.
//
//   auto t = Trainer::create(config, "tiny");      // a new run folder under runs/ (or out_dir)
//   auto t = Trainer::resume("runs/tiny-...", {}); // continue from checkpoints/last
//   TrainResult r = t->fit();
//
// A run folder is written only once the run is built (model, device, data): a start that fails
// leaves no folder behind. Resuming a folder that has no checkpoint yet (its run was killed
// before the first one) starts that run over from its config.json. Resuming a finished run with
// more trainer.epochs than it had extends it; with nothing new to do, fit() says so and changes
// nothing. A resume refuses data other than the run's (dataset.json) unless told to switch.
//
// One optimizer step = `accumulation` micro-batches of forward (NVTX "forward"), loss ("loss"),
// backward ("backward"), then clipping and the update ("optimizer"); batches come under "data",
// each epoch under "epoch". On the GPU the step never waits for the host: the loss is summed
// into a device scalar and read every `log_every` steps, and the non-finite check
// (trainer.skip_nonfinite) is the optimizer's device-side guard: a step whose gradient norm is
// NaN or Inf is skipped on the device (weights, moments and the optimizer's count untouched),
// its loss left out of the logged mean, and the skips are read with the loss at log time.
// "step" counts the optimizer steps taken, skipped ones included.
//
// The run folder: config.json (the resolved config), dataset.json (what the data was made from),
// normalization.json, metrics.jsonl, checkpoints/{last,best}, and after the run metrics.json,
// metrics.md, predictions.csv and plots/. A run stopped by trainer.max_steps in mid-epoch
// validates at that step (a "val" record), so that it too ends with a best checkpoint, test
// metrics and plots.
//
// Data-parallel (trainer.devices > 1, or RANK/WORLD_SIZE set by a launcher; docs/distributed.md):
// this process is one rank. It trains on its shard of each epoch's windows, its gradients are
// averaged with the other ranks' in buckets during the backward (training/distributed.h), and
// every rank applies the same update. Rank 0 alone writes the run folder, logs, validates and
// evaluates; the logged loss is the mean over the ranks (one small all-reduce per log line), and
// the validation loss is sent to every rank so the scheduler and early stopping agree.
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/representation.h"
#include "data/transform.h"
#include "models/transformer.h"
#include "optim/clip.h"
#include "optim/optimizer.h"
#include "optim/scheduler.h"
#include "training/checkpoint.h"
#include "training/data_source.h"
#include "training/profile_table.h"
#include "training/progress.h"
#include "training/run_config.h"
#include "training/run_log.h"
#include "training/step_graph.h"

namespace mt::training {

class DataParallel;
class GradComm;
struct DistEnv;
struct EvalSeries;

struct TrainResult {
  std::string run_dir;
  // "finished", "early_stopping", "max_steps", "interrupted", "nonfinite", or "nothing_to_do"
  // (a resumed run that had already finished, or was already at its trainer.max_steps)
  std::string stop_reason;
  int64_t steps = 0;
  int epochs_done = 0;
  double best_val_loss = 0;
  std::vector<std::pair<int64_t, double>> logged_losses;  // (step, mean loss) as logged
  std::vector<double> val_losses;                         // per epoch, this session
  int64_t nonfinite_skipped = 0;
};

// The train and val loaders of one dataset, and what the final evaluation scores.
struct RunData {
  std::unique_ptr<SplitLoader> train, val;
  // What the loaders' columns are: the model's inputs, then (scale_free) the stored targets.
  data::Representation representation = data::Representation::Level;
  data::FeatureStats stats;  // of every column
  // What the final evaluation scores; null: the test split of the prepared folder, opened then.
  std::shared_ptr<const EvalSeries> test_eval;
  std::shared_ptr<const EvalSeries> val_eval;  // what the blend is fitted on (the same rule)
  std::string description;  // printed at the start ("prepared data_prepared: 1234 windows ...")
  // What the data was made from (prepared_dataset_identity); null for in-memory data.
  nlohmann::json identity;
};

// Opens the prepared dataset of `opts.data_dir` with windows of opts.window every opts.stride
// (re-cut from the manifest's split rows when they differ from the prepared windows).
RunData open_prepared_data(const TrainerOptions& opts, Device device);

// The identity of a prepared dataset, from its manifest: its sources (file names, sizes, CRC-32
// of their text, rows), the rows kept, the time range, the CRC-32 of the normalized series and
// the timestamps, and the split. A run records it as dataset.json.
nlohmann::json prepared_dataset_identity(const nlohmann::json& manifest);
// "" when two identities name the same data (folders and source paths aside), else a few
// lines saying what each holds.
std::string dataset_difference(const nlohmann::json& recorded, const nlohmann::json& now);
// "btcusd_1-min_2023-06.csv, 43200 rows, 2023-06-01 00:00 to 2023-06-30 23:59 UTC"
std::string describe_dataset(const nlohmann::json& identity);

// "runs/<name>-<UTC time>": the folder of a new run whose config names none.
std::string default_run_dir(const std::string& name);

// This process's place in a data-parallel run. Null (the default everywhere): from the
// environment (RANK, WORLD_SIZE; NCCL for several ranks). Tests pass their own communicator to
// run the ranks as threads of one process, on the CPU too.
struct RankSetup {
  std::shared_ptr<GradComm> comm;  // its rank() and world() say where this trainer is
};

class Trainer {
 public:
  // config: a resolved config (run_schema().resolve). data: null to open the prepared dataset.
  static std::unique_ptr<Trainer> create(const nlohmann::json& config, const std::string& name,
                                         std::unique_ptr<RunData> data = nullptr,
                                         const RankSetup* ranks = nullptr);
  // switch_data: continue on data other than the run's (else an Error that says how they differ).
  static std::unique_ptr<Trainer> resume(const std::string& run_dir,
                                         const std::vector<std::string>& overrides,
                                         std::unique_ptr<RunData> data = nullptr,
                                         const RankSetup* ranks = nullptr,
                                         bool switch_data = false);
  ~Trainer();

  TrainResult fit();

  const std::string& run_dir() const { return run_dir_; }
  BTCTransformer& model() { return *model_; }
  const TrainerState& state() const { return state_; }
  const TrainerOptions& options() const { return opts_; }
  int rank() const { return rank_; }
  int world() const { return world_; }
  // False for a resumed run that already finished or is at its trainer.max_steps.
  bool has_work() const;

 private:
  Trainer(nlohmann::json config, std::string run_dir, std::unique_ptr<RunData> data,
          const RankSetup* ranks);
  void build();
  // Rank 0 of a new run: the folder, config.json, dataset.json, normalization.json.
  void write_run_folder();
  // Resume: compares the data with the run's dataset.json; other data is an Error unless
  // switch_data.
  enum class DataCheck { Same, Unrecorded, Switched };
  DataCheck check_dataset(bool switch_data) const;
  // Resume of a finished run with another trainer.epochs than its own (saved_epochs), above the
  // epochs done: reopens it.
  void extend_if_asked(int saved_epochs);
  void setup_data_parallel(const DistEnv& env);
  bool is_rank0() const { return rank_ == 0; }
  // Elementwise sum over the ranks (a no-op for one process); every rank must call it.
  void sum_over_ranks(std::vector<double>& values);
  void restore(const Checkpoint& ck);
  void save(const std::string& which);
  Tensor micro_step(const Tensor& batch);  // returns the (scaled) loss, a device scalar
  // One optimizer step over `batches` (trainer.accumulation micro-batches): the forward and
  // backward of each, the clip and the update. Sets the group's summed loss and the non-finite
  // guard (the gradient norm, or undefined). The same work every step, so that it can be a graph.
  void run_step(const std::vector<Tensor>& batches, Tensor& group_loss, Tensor& guard);
  // run_step as a CUDA graph (trainer.cuda_graph): the batches are copied into the graph's input
  // tensors first.
  void run_step_graph(const std::vector<Tensor>& batches, Tensor& group_loss, Tensor& guard);
  bool uses_cuda_graph() const;
  // A batch [B, T, columns] as the model's inputs [B, T, inputs], and the targets of the
  // positions that have one (trainer_loop.cpp says which).
  Tensor inputs_of(const Tensor& batch) const;
  Tensor target_of(const Tensor& batch) const;
  int64_t forecast_positions(int64_t T) const;
  Var loss_of(const Var& pred, const Tensor& target) const;
  // Returns the non-finite guard passed to the optimizer (the gradient norm), or nothing.
  Tensor optimizer_step();
  void accumulate_pending(const Tensor& group_loss, const Tensor& guard);
  // Reads the optimizer's skip counters (at log time): skip records, counts, the stop rule.
  void note_skips(TrainResult& result, Progress& progress);
  std::string train_epoch(TrainResult& result);  // "" or a stop reason
  std::string end_epoch(TrainResult& result, double epoch_seconds);
  double validate();
  // A max_steps stop in mid-epoch: validates at that step, keeps a better model as "best".
  void validate_at_stop();
  bool log_train(TrainResult& result, Progress& progress, int64_t step_in_epoch);
  void flush_pending();
  void finish();
  void say_nothing_to_do() const;
  // The end of a run stopped by trainer.max_steps: validation, checkpoints, evaluation, plots.
  void stop_at_max_steps();
  void print_header() const;

  nlohmann::json config_;
  TrainerOptions opts_;
  std::string run_dir_;
  Device device_;
  Precision precision_ = Precision::Float32;
  bool delta_target_ = false;
  data::Representation representation_ = data::Representation::Level;
  Generator gen_;
  std::unique_ptr<RunData> data_;
  std::unique_ptr<BTCTransformer> model_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<EarlyStopping> early_;
  // Data-parallel: this process's place and the gradient averaging (null for one process).
  int rank_ = 0, world_ = 1;
  std::shared_ptr<GradComm> comm_;
  std::unique_ptr<DataParallel> dp_;
  bool stop_agreed_ = false;  // every rank saw a stop request at the last log line
  Tensor loss_weights_;
  TrainerState state_;
  RunLog log_;
  // The loss of the steps since the last log line, summed on the device and read at log time,
  // and how many of them were applied (not skipped as non-finite); state_.pending_* hold the
  // host copy a checkpoint needs.
  Tensor pending_loss_, pending_applied_;
  Tensor zero_, one_;           // device scalars for accumulate_pending
  int64_t skipped_logged_ = 0;  // the optimizer's skip total at the last log line
  int64_t tokens_since_log_ = 0;
  StepProfiler profiler_;  // trainer.profile_steps: the per-range time table
  // trainer.cuda_graph: the captured step, its input batches (the same storage every step) and
  // what it leaves (the group's loss and guard, rewritten by each replay).
  std::unique_ptr<StepGraph> step_graph_;
  std::vector<Tensor> graph_batches_;
  Tensor graph_loss_, graph_guard_;
  std::chrono::steady_clock::time_point session_start_, last_log_;
};

}  // namespace mt::training
