// Fixtures of the trainer tests: a small synthetic series as in-memory loaders, the tiny
// config, one OpenMP thread, and a temporary folder.
#pragma once

#include <omp.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "training/eval_series.h"
#include "training/run_config.h"
#include "training/trainer.h"

namespace mt::testing {

using nlohmann::json;
using namespace mt::training;
namespace fs = std::filesystem;

constexpr int64_t kWindow = 32, kStride = 16, kBatch = 4;

// `rows` minutes of five correlated features from a fixed integer generator (no libm calls, so
// the series is the same everywhere): a random walk and offsets of it, and a noisy "volume".
// nan_rows: rows [0, nan_rows) get a NaN close.
inline Series synthetic_series(int64_t rows, int64_t nan_rows = 0) {
  const int64_t F = 5;
  std::vector<float> v(static_cast<size_t>(rows * F));
  uint64_t state = 12345;
  auto uniform = [&] {  // splitmix64 -> [0, 1)
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return static_cast<double>((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
  };
  double walk = -1.0;
  for (int64_t t = 0; t < rows; ++t) {
    walk += 0.1 * (uniform() - 0.5);
    const double u = uniform();
    float* r = &v[static_cast<size_t>(t * F)];
    r[0] = static_cast<float>(walk);
    r[1] = static_cast<float>(walk + 0.05 + 0.02 * u);
    r[2] = static_cast<float>(walk - 0.05 - 0.02 * u);
    r[3] = static_cast<float>(walk + 0.01 * (u - 0.5));
    r[4] = static_cast<float>(2.0 * uniform() - 1.0);
    if (t < nan_rows) r[3] = NAN;
  }
  Series s;
  s.values = std::make_shared<const std::vector<float>>(std::move(v));
  return s;
}

// The series above, 600 minutes: rows [0, 400) train (24 windows, 6 steps of 4), [400, 500) val,
// [500, 600) test (5 each). nan_rows: rows [0, nan_rows) get a NaN close (400: every training
// window). batch: windows per batch of the three loaders.
inline std::unique_ptr<RunData> synthetic_data(uint64_t seed, int64_t nan_rows = 0,
                                               int64_t batch = kBatch) {
  const Series s = synthetic_series(600, nan_rows);
  auto starts = [&](int64_t b, int64_t e) { return window_starts({{b, e}}, kWindow, kStride); };
  auto d = std::make_unique<RunData>();
  d->train = std::make_unique<ArrayLoader>(s, starts(0, 400), kWindow, batch, true, seed, true,
                                           Device::cpu());
  d->val = std::make_unique<ArrayLoader>(s, starts(400, 500), kWindow, batch, false, 0, false,
                                         Device::cpu());
  d->test_eval = std::make_shared<const EvalSeries>(
      eval_series_from_levels(s, starts(500, 600), kWindow, d->stats));
  d->description = "synthetic test series";
  return d;
}

// What every test run sets besides its model and data: a log line a step, nothing at the end
// (evaluation, blend, plots), no progress bar, and its folder.
inline std::vector<std::string> quiet_run_settings(const std::string& out_dir) {
  return {"trainer.log_every=1", "trainer.evaluate=false", "trainer.blend=false",
          "trainer.plots=false", "trainer.progress=none",  "trainer.out_dir=" + out_dir};
}

inline json tiny_config(const std::string& out_dir, std::vector<std::string> extra = {}) {
  const std::vector<std::string> quiet = quiet_run_settings(out_dir);
  std::vector<std::string> sets = {"data.representation=level",  // the series' five columns
                                   "model.d_model=16",
                                   "model.n_heads=2",
                                   "model.n_layers=1",
                                   "model.d_ff=32",
                                   "model.attn_dropout=0.05",
                                   "optimizer.lr=0.003",
                                   "optimizer.weight_decay=0.001",
                                   "scheduler.name=plateau",
                                   "scheduler.factor=0.5",
                                   "scheduler.patience=0",
                                   "data.window=32",
                                   "data.stride=16",
                                   "trainer.epochs=2",
                                   "trainer.batch_size=4",
                                   "trainer.precision=fp32",
                                   "trainer.device=cpu",
                                   "trainer.seed=7"};
  sets.insert(sets.end(), quiet.begin(), quiet.end());
  sets.insert(sets.end(), extra.begin(), extra.end());
  return run_schema().resolve(json::object(), sets);
}

inline std::vector<double> losses_of(const TrainResult& r) {
  std::vector<double> out;
  for (const auto& [step, loss] : r.logged_losses) out.push_back(loss);
  return out;
}

// The tiny model gains nothing from threads, and on a loaded 2-core CI machine OpenMP's barriers
// cost seconds per epoch: each case runs single-threaded and restores the count afterwards.
struct OneThread {
  int previous = omp_get_max_threads();
  OneThread() { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(previous); }
};

// A scratch folder under the system's temp directory, named after the case and the process, so
// that two test processes (e.g. memcheck and racecheck side by side) never share one.
struct TempDir {
  fs::path path;
  explicit TempDir(const char* name)
      : path(fs::temp_directory_path() / (std::string(name) + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string sub(const std::string& s) const { return (path / s).string(); }
};

}  // namespace mt::testing
