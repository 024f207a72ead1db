// Checkpoints: everything a run needs to continue exactly where it stopped.
//
// A checkpoint is a folder with two files:
//   model.safetensors    the weights under PyTorch's names and layouts (loads into the PyTorch
//                        model with no renaming); metadata: format, step, the model config
//   trainer.safetensors  the optimizer's per-parameter slots ("<param>.exp_avg", ...) and, in
//                        the metadata key "trainer_state", a JSON TrainerState: epoch, batch
//                        position, step, RNG (seed, offset), optimizer and scheduler state,
//                        best validation loss, non-finite counters, the epoch's loss sums
// The run folder holds two: checkpoints/last (after every epoch, every `checkpoint_every`
// steps, at a stop and on Ctrl-C) and checkpoints/best (the lowest validation loss so far).
//
// Written atomically as a folder: the files go to <dir>.tmp, then <dir> is renamed to
// <dir>.old, <dir>.tmp to <dir>, and <dir>.old removed. A crash at any point leaves either the
// previous or the new checkpoint whole; load finds <dir>.old when <dir> is missing.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "optim/optimizer.h"
#include "tensor/tensor.h"

namespace mt::training {

// Bumped when the layout changes; loading another version is an Error naming both.
constexpr int kCheckpointFormat = 1;

struct TrainerState {
  int epoch = 0;               // the epoch in progress (or the next one to start)
  int64_t batch_in_epoch = 0;  // batches of `epoch` already consumed (per rank)
  // The epoch's global progress: windows of its global order consumed by all ranks together
  // (batch_in_epoch * batch_size * world), so that a run resumes on any number of GPUs
  // (training/distributed.h resume_batch). -1 in checkpoints older than this field.
  int64_t samples_in_epoch = -1;
  int world = 1;                          // ranks of the run that wrote the checkpoint
  int64_t step = 0;                       // optimizer steps since the start of the run
  uint64_t rng_seed = 0, rng_offset = 0;  // the dropout generator
  double best_val_loss = std::numeric_limits<double>::infinity();
  int best_epoch = -1;
  int64_t nonfinite_total = 0, nonfinite_in_a_row = 0;
  double epoch_loss_sum = 0;  // the running train loss of `epoch`, for its summary line
  int64_t epoch_loss_count = 0;
  double pending_loss_sum = 0;  // steps since the last log line: their summed loss, their count
  int64_t pending_steps = 0;    // and how many of them were applied (not skipped as non-finite)
  int64_t pending_applied = 0;
  double elapsed_s = 0;   // training time before this checkpoint, for throughput figures
  bool finished = false;  // the run completed all epochs (or stopped early by design)
  nlohmann::json scheduler = nlohmann::json::object();
  nlohmann::json early_stopping = nlohmann::json::object();

  nlohmann::json to_json() const;
  static TrainerState from_json(const nlohmann::json& j);  // Error naming a missing key
};

struct Checkpoint {
  std::map<std::string, Tensor> model;  // CPU tensors
  StateDict optimizer;                  // meta + slot tensors
  TrainerState state;
  nlohmann::json model_config = nlohmann::json::object();
};

void save_checkpoint(const std::string& dir, const std::map<std::string, Tensor>& model,
                     const StateDict& optimizer, const TrainerState& state,
                     const nlohmann::json& model_config);
// Errors name the folder and the file: missing, truncated, not safetensors, wrong format
// version, or model and trainer files from different steps.
Checkpoint load_checkpoint(const std::string& dir);
// Only the weights (for evaluation), with the model config from their metadata.
Checkpoint load_weights(const std::string& dir);
// True when `dir` (or its .old twin from an interrupted swap) holds a checkpoint.
bool checkpoint_exists(const std::string& dir);

}  // namespace mt::training
