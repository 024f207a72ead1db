#include "training/data_source.h"

#include <algorithm>

#include "base/error.h"
#include "data/csv_reader.h"
#include "data/sharded_sampler.h"

namespace mt::training {

namespace {

// splitmix64: a tiny, fully specified generator, so shuffles are the same with every standard
// library (std::uniform_int_distribution is not).
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

std::vector<int64_t> window_starts(const std::vector<data::Segment>& segments, int64_t window,
                                   int64_t stride) {
  CHECK(window >= 2 && stride >= 1, "window_starts: window {} must be >= 2 and stride {} >= 1",
        window, stride);
  std::vector<int64_t> starts;
  for (const data::Segment& s : segments) {
    for (int64_t b = s.begin; b + window <= s.end; b += stride) starts.push_back(b);
  }
  return starts;
}

std::vector<int64_t> window_starts_in(const std::vector<data::Segment>& segments,
                                      data::Segment rows, int64_t window, int64_t stride,
                                      int64_t lookahead) {
  std::vector<data::Segment> pieces;
  for (const data::Segment& s : segments) {
    const int64_t b = std::max(s.begin, rows.begin), e = std::min(s.end, rows.end) - lookahead;
    if (e > b) pieces.push_back({b, e});
  }
  return window_starts(pieces, window, stride);
}

ArrayLoader::ArrayLoader(Series series, std::vector<int64_t> starts, int64_t window, int64_t batch,
                         bool shuffle, uint64_t seed, bool drop_last, Device device)
    : series_(std::move(series)),
      starts_(std::move(starts)),
      window_(window),
      batch_(batch),
      shuffle_(shuffle),
      drop_last_(drop_last),
      seed_(seed),
      device_(device) {
  CHECK(batch_ >= 1, "ArrayLoader: batch must be >= 1, got {}", batch_);
  for (int64_t s : starts_) {
    CHECK(s >= 0 && s + window_ <= series_.rows(),
          "ArrayLoader: window [{}, {}) is outside the series of {} rows", s, s + window_,
          series_.rows());
  }
  start_epoch(0);
}

void ArrayLoader::set_shard(int rank, int world) {
  CHECK(world >= 1 && rank >= 0 && rank < world, "ArrayLoader::set_shard: rank {} of {} ranks",
        rank, world);
  rank_ = rank;
  world_ = world;
  start_epoch(0);
}

int64_t ArrayLoader::batches_per_epoch() const {
  const int64_t n = data::shard_length(windows(), world_, data::ShardTail::Drop);
  return drop_last_ ? n / batch_ : (n + batch_ - 1) / batch_;
}

void ArrayLoader::start_epoch(int epoch, int64_t skip) {
  order_.resize(starts_.size());
  for (size_t i = 0; i < order_.size(); ++i) order_[i] = static_cast<int64_t>(i);
  if (shuffle_) {
    uint64_t state = seed_ * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch);
    for (size_t i = order_.size(); i > 1; --i) {  // Fisher-Yates
      const size_t j = static_cast<size_t>(splitmix64(state) % i);
      std::swap(order_[i - 1], order_[j]);
    }
  }
  if (world_ > 1) order_ = data::shard_of(order_, rank_, world_, data::ShardTail::Drop);
  CHECK(skip >= 0 && skip <= batches_per_epoch(),
        "ArrayLoader: cannot skip {} batches of an epoch of {}", skip, batches_per_epoch());
  cursor_ = skip * batch_;
}

bool ArrayLoader::next(Tensor& batch) {
  const int64_t n = static_cast<int64_t>(order_.size());
  const int64_t left = n - cursor_;
  if (left <= 0 || (drop_last_ && left < batch_)) return false;
  const int64_t B = std::min(batch_, left);
  const int F = series_.features;
  Tensor host = Tensor::empty({B, window_, F}, kFloat32);
  float* out = host.data<float>();
  const float* src = series_.values->data();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t start = starts_[static_cast<size_t>(order_[static_cast<size_t>(cursor_ + b)])];
    std::copy(src + start * F, src + (start + window_) * F, out + b * window_ * F);
  }
  cursor_ += B;
  batch = host.to(device_);
  return true;
}

}  // namespace mt::training
