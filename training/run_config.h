// The training run's configuration schema: every key `train` accepts, its default and help.
//
// Sections (models/config.h documents the file layout):
//   model.*      models/ (ModelConfig); defaults are the seed's model
//   optimizer.*  optim/factory.h; a null default means "the optimizer's own default" (PyTorch's)
//   scheduler.*  optim/factory.h; the same
//   data.*       the prepared dataset folder and the windows cut from it
//   trainer.*    the loop: epochs, batch, accumulation, clipping, precision, seed, device, ...
// `train --help` prints this table; docs/training.md explains each key.
#pragma once

#include <string>

#include "training/config.h"

namespace mt::training {

const ConfigSchema& run_schema();

// The resolved trainer and data settings, read from a config that run_schema() resolved.
struct TrainerOptions {
  // data
  std::string data_dir;
  std::string representation;  // "scale_free" | "level" (data/representation.h)
  int64_t window = 0, stride = 0;
  // trainer
  int epochs = 0;
  int64_t max_steps = 0;  // 0: no limit
  int64_t batch_size = 0;
  int accumulation = 1;
  double clip = 0;  // 0: no clipping
  std::string precision, device, out_dir, progress;
  uint64_t seed = 0;
  int64_t log_every = 1;
  int64_t checkpoint_every = 0;  // steps; 0: at epoch ends only
  int64_t max_nonfinite = 0;     // consecutive skipped steps that stop the run
  bool skip_nonfinite = true;
  int64_t val_batches = 0;          // 0: the whole validation split
  int early_stopping_patience = 0;  // 0: off
  double early_stopping_min_delta = 0;
  std::string loss;  // "smooth_l1" | "mse"
  double loss_beta = 0;
  std::vector<double> loss_weights;
  bool evaluate = true, plots = true;
  bool blend = true;         // fit the blend with the naive rule on the validation split at the end
  int64_t eval_windows = 0;  // 0: the whole test split
  int threads = 0;
  // data-parallel (training/distributed.h): GPUs of this host, one process each
  int devices = 1;
  int64_t dp_bucket_kb = 256;
  int64_t dp_check_every = 100;
  int64_t profile_steps = 0;  // steps timed per range after a warm-up step (0: off)
  // The step as one CUDA graph (training/step_graph.h); only on a GPU, with one process and no
  // profile_steps (whose per-range timing needs every launch).
  bool cuda_graph = true;

  static TrainerOptions from_config(const json& config);
};

// A config with nulls removed from `section` (the factories apply their own defaults).
json section_without_nulls(const json& config, const std::string& section);

}  // namespace mt::training
