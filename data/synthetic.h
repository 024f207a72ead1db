// A synthetic Bitcoin-like market, written in the Kaggle CSV layout, so that `make data` and
// `make train` work with no download. It is NOT market data; the manifest says synthetic: true.
//
// The model, minute by minute (all randomness from Philox, so a seed gives the same file
// everywhere):
//   volatility clustering, GARCH(1,1) on the one-minute log return r:
//       s2_t = omega + alpha r_{t-1}^2 + beta s2_{t-1},  alpha 0.05, beta 0.94, and omega set
//       so that the long-run volatility is 0.08 % a minute (BTC's order in 2023);
//   intraday seasonality: volatility and volume scale by 1 + 0.4 cos(2 pi (hour - 15) / 24),
//       busiest at 15:00 UTC (the US open) and quietest at 03:00;
//   prices: four Brownian sub-steps inside each minute give open (the last close), high, low
//       and close, rounded to cents;
//   volume: lognormal around 5 BTC a minute times the seasonality, and larger in volatile
//       minutes (x (1 + 200 |r|));
//   gaps: `gaps` stretches of 5-120 missing minutes at random places (exchange outages).
#pragma once

#include <cstdint>
#include <string>

namespace mt::data {

struct SyntheticOptions {
  int64_t minutes = 200000;  // rows before the gaps are cut out (~139 days)
  uint64_t seed = 1;
  int64_t start_ts = 1672531200;  // 2023-01-01 00:00 UTC
  double start_price = 20000.0;   // USD
  int gaps = 3;
};

// The CSV text (header included).
std::string synthetic_csv(const SyntheticOptions& options);

// Writes synthetic_csv to path (atomically).
void write_synthetic_csv(const std::string& path, const SyntheticOptions& options);

}  // namespace mt::data
