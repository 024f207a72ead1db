// Using a trained run: the next minute's candle from the latest minutes of a CSV file.
//
//   Forecast f = forecast_next({.run_dir = "runs/btc-...", .csv = {"latest.csv.gz"}});
//
// The last `window` minutes of the file (one gap-free run: a gap among them is an error, as is
// a file with fewer minutes) go through the run's model exactly as `evaluate` feeds a window:
// the run's representation and normalization, its best checkpoint, its blend with the naive
// rule. The forecast is the model's output at the window's last position: the minute after the
// file's last row. Beside it, the two naive baselines of data/baselines.h for the same minute.
// Earlier minutes of the file, when present, only feed the trailing volume levels and the
// naive rules' averages, as they do in `prepare` (data/representation.h).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/csv_reader.h"
#include "tensor/tensor.h"

namespace mt::training {

struct ForecastOptions {
  std::string run_dir;
  std::vector<std::string> csv;
  data::ReadOptions read;
  std::string checkpoint = "best";
  std::string device;  // empty: the run's trainer.device
};

struct Forecast {
  int64_t last_ts = 0;   // the file's last minute (Unix seconds)
  int64_t ts = 0;        // the minute forecast: last_ts + 60
  double model[5] = {};  // open, high, low, close (USD), volume (BTC)
  double persistence[5] = {};
  double naive_rule[5] = {};
  double model_z[5] = {};  // the blended forecast in the run's z-space
  double last[5] = {};     // the file's last candle
  int64_t window = 0;      // minutes the model read
  std::string representation, checkpoint;

  nlohmann::json to_json() const;
  std::string table() const;  // the human-readable report
};

Forecast forecast_next(const ForecastOptions& options);

}  // namespace mt::training
