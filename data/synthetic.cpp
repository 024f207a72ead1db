#include "data/synthetic.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "base/error.h"
#include "base/philox.h"
#include "data/prepared.h"

namespace mt::data {

namespace {

constexpr double kPi = 3.14159265358979323846;

// Standard normals from Philox by Box-Muller: draw k of the stream is a pure function of k.
class Normals {
 public:
  explicit Normals(uint64_t seed) : seed_(seed) {}
  double next() {
    const Philox4 r = philox4x32(seed_, counter_++, /*stream=*/0);
    // (bits + 0.5) / 2^32 lies in (0, 1): the log never sees 0.
    const double u1 = (static_cast<double>(r.v[0]) + 0.5) / 4294967296.0;
    const double u2 = (static_cast<double>(r.v[1]) + 0.5) / 4294967296.0;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * kPi * u2);
  }
  uint32_t bits() { return philox4x32(seed_, counter_++, /*stream=*/1).v[0]; }

 private:
  uint64_t seed_;
  uint64_t counter_ = 0;
};

}  // namespace

std::string synthetic_csv(const SyntheticOptions& o) {
  CHECK(o.minutes >= 1 && o.start_price > 0 && o.gaps >= 0,
        "synthetic_csv: need minutes >= 1, start_price > 0, gaps >= 0 (got {}, {}, {})", o.minutes,
        o.start_price, o.gaps);
  Normals rng(o.seed);
  // The minutes to leave out.
  std::vector<char> missing(static_cast<size_t>(o.minutes), 0);
  for (int g = 0; g < o.gaps; ++g) {
    const int64_t length = 5 + static_cast<int64_t>(rng.bits() % 116);
    const int64_t at = static_cast<int64_t>(rng.bits() % static_cast<uint64_t>(o.minutes));
    for (int64_t m = at; m < std::min(o.minutes, at + length); ++m) missing[m] = 1;
  }
  const double alpha = 0.05, beta = 0.94, long_run = 0.0008;
  const double omega = long_run * long_run * (1 - alpha - beta);
  double s2 = long_run * long_run, r_prev = 0, close = o.start_price;
  std::string out = "Timestamp,Open,High,Low,Close,Volume\n";
  out.reserve(static_cast<size_t>(o.minutes) * 56);
  for (int64_t m = 0; m < o.minutes; ++m) {
    const int64_t ts = o.start_ts + 60 * m;
    const double hour = static_cast<double>((ts / 60) % 1440) / 60.0;
    const double season = 1.0 + 0.4 * std::cos(2.0 * kPi * (hour - 15.0) / 24.0);
    s2 = omega + alpha * r_prev * r_prev + beta * s2;
    const double sigma = std::sqrt(s2) * season;
    // Four sub-steps of variance sigma^2 / 4 make the minute's path.
    const double open = close;
    double log_p = std::log(open), high = open, low = open, r = 0;
    for (int k = 0; k < 4; ++k) {
      const double step = 0.5 * sigma * rng.next();
      log_p += step;
      r += step;
      high = std::max(high, std::exp(log_p));
      low = std::min(low, std::exp(log_p));
    }
    close = std::exp(log_p);
    // GARCH sees the deseasonalized return: fed the raw one, the 1.4x peak hours would push
    // alpha * 1.4^2 + beta above 1 and the volatility would explode.
    r_prev = r / season;
    const double volume = 5.0 * season * std::exp(0.6 * rng.next()) * (1.0 + 200.0 * std::fabs(r));
    if (missing[static_cast<size_t>(m)]) continue;
    // Cents for prices (floor the low and ceil the high, so low <= open, close <= high holds after
    // rounding), 8 decimals (satoshis) for volume.
    out += fmt::format("{},{:.2f},{:.2f},{:.2f},{:.2f},{:.8f}\n", ts, open,
                       std::ceil(high * 100) / 100, std::floor(low * 100) / 100, close, volume);
  }
  return out;
}

void write_synthetic_csv(const std::string& path, const SyntheticOptions& options) {
  const std::string text = synthetic_csv(options);
  write_file_atomic(path, text.data(), text.size());
}

}  // namespace mt::data
