// metrics.jsonl: every figure the trainer prints, one JSON object per line, in the run folder.
//
// Records carry a "kind":
//   {"kind":"train","epoch":0,"step":10,"loss":0.0123,"lr":5e-05,"tokens_per_s":81234,"time_s":12.3}
//   {"kind":"epoch","epoch":0,"step":400,"train_loss":0.011,"val_loss":0.009,"lr":5e-05,"time_s":41.0}
//   {"kind":"skip","epoch":0,"step":60,"reason":"non-finite gradient norm","skipped":2,...}
// "step" counts optimizer steps since the start of the run, skipped ones included. A skip record
// comes with the log line after the skipped steps (the skip is decided on the device and read at
// log time): "skipped" steps since the previous line, "in_a_row" ending at this step. The plots
// (training/plots.h) read this file back, so a resumed run's curve is drawn from one file: on
// resume the lines past the checkpoint's step (written after it, then lost with the interrupted
// run) are dropped first.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mt::training {

class RunLog {
 public:
  RunLog() = default;
  explicit RunLog(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }
  // Appends one line and flushes it (a killed run keeps every line written before).
  void append(const nlohmann::json& record) const;
  // Keeps only the records with step <= `step` (atomic rewrite). No-op when the file is absent.
  void truncate_after(int64_t step) const;

 private:
  std::string path_;
};

// Reads every record of a metrics.jsonl file; a malformed line is an Error naming path:line.
std::vector<nlohmann::json> read_run_log(const std::string& path);

}  // namespace mt::training
