// What the trainer needs from the data layer, behind one small interface.
//
// SplitLoader hands out batches [B, T, F] float32 on the run's device, in a per-epoch order that
// depends only on (seed, epoch), and can start an epoch part-way (a resumed run skips the batches
// its checkpoint had consumed). Two implementations:
//   - the prepared dataset of `make data` (data/loader.h), for train/val/test;
//   - ArrayLoader, windows of an in-memory series: a CSV evaluated with a run's own
//     normalization (`evaluate --data other.csv`), and the tests' synthetic series.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/clean.h"
#include "data/transform.h"
#include "tensor/tensor.h"

namespace mt::training {

class SplitLoader {
 public:
  virtual ~SplitLoader() = default;
  virtual int64_t batches_per_epoch() const = 0;
  virtual int64_t windows() const = 0;
  virtual int64_t window() const = 0;  // T
  // Data-parallel: from the next start_epoch on, only rank `rank` of `world`'s shard of each
  // epoch's order (data/sharded_sampler.h, ShardTail::Drop); batches_per_epoch() counts the
  // shard's batches.
  virtual void set_shard(int rank, int world) = 0;
  // Positions the loader at batch `skip` of `epoch` (0: the start).
  virtual void start_epoch(int epoch, int64_t skip = 0) = 0;
  // The next batch of the epoch, or false at its end.
  virtual bool next(Tensor& batch) = 0;
};

// A normalized series [rows, F] (float32 z-scores) cut into gap-free segments.
struct Series {
  std::shared_ptr<const std::vector<float>> values;
  int features = data::kFeatures;
  std::vector<data::Segment> segments;
  int64_t rows() const { return static_cast<int64_t>(values->size()) / features; }
};

// Window start rows: every `stride` rows inside each segment, whole windows only.
std::vector<int64_t> window_starts(const std::vector<data::Segment>& segments, int64_t window,
                                   int64_t stride);

// Window starts of the rows [rows.begin, rows.end) for a (window, stride): the range cut by the
// segments, each piece less its last `lookahead` rows (which only targets read), windows laid
// out in each piece. No window crosses a split boundary or a gap (data/windows.h's purge).
std::vector<int64_t> window_starts_in(const std::vector<data::Segment>& segments,
                                      data::Segment rows, int64_t window, int64_t stride,
                                      int64_t lookahead);

class ArrayLoader : public SplitLoader {
 public:
  // shuffle: a new order each epoch from (seed, epoch); drop_last: only full batches.
  ArrayLoader(Series series, std::vector<int64_t> starts, int64_t window, int64_t batch,
              bool shuffle, uint64_t seed, bool drop_last, Device device);
  int64_t batches_per_epoch() const override;
  int64_t windows() const override { return static_cast<int64_t>(starts_.size()); }
  int64_t window() const override { return window_; }
  void set_shard(int rank, int world) override;
  void start_epoch(int epoch, int64_t skip = 0) override;
  bool next(Tensor& batch) override;

 private:
  Series series_;
  std::vector<int64_t> starts_, order_;
  int64_t window_, batch_;
  bool shuffle_, drop_last_;
  uint64_t seed_;
  Device device_;
  int rank_ = 0, world_ = 1;
  int64_t cursor_ = 0;  // index into order_
};

}  // namespace mt::training
