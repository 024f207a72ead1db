// Loading a prepared dataset and batching its windows.
//
//   WindowDataset train = WindowDataset::open("data_prepared", Split::Train);
//   BatchLoader loader(train, /*batch=*/32, /*seed=*/42, /*shuffle=*/true, Device::cuda(),
//                      /*drop_last=*/true);
//   for (int64_t epoch = start.epoch; epoch < epochs; ++epoch) {
//     loader.start_epoch(epoch, epoch == start.epoch ? start.batch : 0);  // resumable
//     Tensor x;                       // [B, T, 5] float32 on the loader's device
//     while (loader.next(x)) { ... checkpoint loader.position() ... }
//   }
//   Tensor usd = train.to_prices(prediction);  // z-scores -> USD and BTC, float64 on the CPU
//
// Order: a training loader (shuffle = true) visits the windows in a permutation that is a pure
// function of (seed, epoch) (Philox, see windows.h), so the same seed gives the same batches on
// any machine, and a run resumed at (epoch, batch) continues with exactly the batches it would
// have seen. Val/test loaders (shuffle = false) go in time order.
//
// CPU: a background thread assembles batch k+1 (B memcpy's of T x 5 floats) while the caller
// works on batch k. GPU: the whole normalized series (67 MB for the full Kaggle file) is
// uploaded once, the epoch's window starts once per epoch, and each batch is gathered on the
// device by one kernel (cuda/gather_windows.cuh): no host-to-device copy of batch data and no
// host synchronization per step.
#pragma once

#include <cstdint>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/representation.h"
#include "data/transform.h"
#include "data/windows.h"
#include "tensor/tensor.h"

namespace mt::data {

class WindowDataset {
 public:
  // Opens a folder written by prepare (prepared.h); checks the manifest and every file it needs.
  static WindowDataset open(const std::string& dir, Split split);
  // A dataset over a series in memory ([N, F] float32 on the CPU), for tests and tools.
  static WindowDataset from_series(Tensor series, std::vector<int64_t> starts, int64_t window,
                                   FeatureStats stats = FeatureStats(), Split split = Split::Train,
                                   Representation representation = Representation::Level);

  Split split() const { return split_; }
  int64_t size() const { return static_cast<int64_t>(starts_->size()); }  // windows
  int64_t window() const { return window_; }                              // T
  int64_t rows() const { return series_.size(0); }                        // N
  const Tensor& series() const { return series_; }                        // [N, F] float32, CPU
  int64_t columns() const { return series_.size(1); }  // F: inputs, then stored targets
  Representation representation() const { return representation_; }
  const std::vector<int64_t>& starts() const { return *starts_; }  // first row of each window
  // Unix seconds of each row (empty for from_series datasets).
  const std::vector<int64_t>& timestamps() const { return *timestamps_; }
  // Window i as a [T, 5] view of the series.
  Tensor window_at(int64_t i) const;
  const FeatureStats& stats() const { return stats_; }
  // Level representation only: z-scores [..., 5] (any device) -> USD (open, high, low, close)
  // and BTC (volume), float64 CPU.
  Tensor to_prices(const Tensor& z) const;
  // The folder's manifest.json (null for from_series datasets).
  const nlohmann::json& manifest() const { return *manifest_; }
  bool synthetic() const;

 private:
  Split split_ = Split::Train;
  int64_t window_ = 0;
  Tensor series_;
  std::shared_ptr<const std::vector<int64_t>> starts_;
  std::shared_ptr<const std::vector<int64_t>> timestamps_;
  std::shared_ptr<const nlohmann::json> manifest_;
  FeatureStats stats_;
  Representation representation_ = Representation::Level;
};

// Where a loader is: the next batch that next() returns. Save it in a checkpoint and pass it
// back to start_epoch to resume.
struct LoaderPosition {
  int64_t epoch = 0;
  int64_t batch = 0;
};

class BatchLoader {
 public:
  // drop_last: leave out the last, smaller batch (keeps every training step's shape [B, T, 5]).
  BatchLoader(const WindowDataset& dataset, int64_t batch_size, uint64_t seed, bool shuffle,
              Device device = Device::cpu(), bool drop_last = false);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  int64_t size() const;  // batches per epoch
  int64_t batch_size() const { return batch_size_; }
  Device device() const { return device_; }
  const WindowDataset& dataset() const { return dataset_; }

  // Data-parallel training: from the next start_epoch on, this loader hands out only rank
  // `rank`'s shard of each epoch's order (data/sharded_sampler.h: every world-th window, the
  // last order.size() % world dropped), so that the ranks' batches j together are batch j of
  // one loader at batch_size * world. (0, 1): the whole epoch (the default).
  void set_shard(int rank, int world);
  int shard_rank() const { return rank_; }
  int shard_world() const { return world_; }

  // Starts (or restarts) an epoch at batch `batch` (0 .. size()).
  void start_epoch(int64_t epoch, int64_t batch = 0);
  // The next batch [B, T, 5] float32 on device(); false (batch untouched) at the epoch's end.
  bool next(Tensor& batch);
  LoaderPosition position() const { return {epoch_, batch_}; }
  // Window indices in this epoch's order (this rank's shard of it when sharded).
  const std::vector<int64_t>& epoch_order() const { return order_; }

 private:
  int64_t epoch_windows() const;  // windows of one epoch for this loader's shard
  Tensor assemble_cpu(int64_t batch) const;
  Tensor gather_gpu(int64_t batch) const;
  void prefetch(int64_t batch);
  void wait_prefetch();

  WindowDataset dataset_;
  int64_t batch_size_;
  uint64_t seed_;
  bool shuffle_;
  Device device_;
  bool drop_last_;
  int rank_ = 0, world_ = 1;
  int64_t epoch_ = 0;
  int64_t batch_ = 0;
  bool started_ = false;
  std::vector<int64_t> order_;       // window indices of this epoch
  std::vector<int64_t> row_starts_;  // their first rows, in order
  Tensor series_device_;             // GPU: the series, uploaded once
  Tensor starts_device_;             // GPU: row_starts_, uploaded once per epoch
  std::future<Tensor> pending_;      // CPU: the batch being prefetched
  int64_t pending_batch_ = -1;
};

}  // namespace mt::data
