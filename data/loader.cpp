#include "data/loader.h"

#include <cstring>

#include "base/error.h"
#include "cuda/nvtx.h"
#include "cuda/runtime.h"
#include "data/prepared.h"
#include "data/sharded_sampler.h"

#ifdef MT_WITH_CUDA
#include "cuda/gather_windows.cuh"
#endif

namespace mt::data {

namespace {

// The loader's Philox key is the seed mixed with a constant, so that a run whose model init and
// dropout draw from the same seed does not reuse the loader's random stream.
constexpr uint64_t kShuffleKey = 0x5DEECE66DA3F9B1Bull;

void check_starts(const std::vector<int64_t>& starts, int64_t window, int64_t rows,
                  const std::string& what) {
  for (size_t i = 0; i < starts.size(); ++i) {
    CHECK(starts[i] >= 0 && starts[i] + window <= rows,
          "{}: window {} starts at row {}, so its {} rows end past the series' {} rows", what, i,
          starts[i], window, rows);
    CHECK(i == 0 || starts[i] > starts[i - 1], "{}: window starts are not ascending at {}", what,
          i);
  }
}

}  // namespace

WindowDataset WindowDataset::open(const std::string& dir, Split split) {
  cuda::NvtxRange range("data_open");
  auto manifest = std::make_shared<nlohmann::json>(read_manifest(dir));
  const std::vector<int64_t> shape = prepared_shape(*manifest, "series");
  const Representation rep = representation_of(*manifest);
  const int64_t F = input_count(rep) + stored_target_count(rep);
  CHECK(shape.size() == 2 && shape[1] == F && shape[0] > 0,
        "'{}': series shape {} is not [N, {}] ({} representation)", dir, shape_str(shape), F,
        representation_name(rep));
  const int64_t n = shape[0];
  WindowDataset ds;
  ds.split_ = split;
  ds.window_ = manifest->value("window", int64_t{0});
  CHECK(ds.window_ >= 2, "'{}': manifest window {} is invalid", dir, ds.window_);
  ds.representation_ = rep;
  ds.series_ = Tensor::empty({n, F}, kFloat32);
  read_prepared_file(dir, *manifest, "series", ds.series_.data<float>(), ds.series_.nbytes());

  auto timestamps = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(n));
  CHECK(prepared_shape(*manifest, "timestamps") == Shape{n},
        "'{}': timestamps and series disagree on the number of rows", dir);
  read_prepared_file(dir, *manifest, "timestamps", timestamps->data(), timestamps->size() * 8);

  const std::string key = std::string("windows_") + split_name(split);
  const std::vector<int64_t> wshape = prepared_shape(*manifest, key);
  CHECK(wshape.size() == 1, "'{}': {} shape {} is not [windows]", dir, key, shape_str(wshape));
  auto starts = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(wshape[0]));
  read_prepared_file(dir, *manifest, key, starts->data(), starts->size() * 8);
  check_starts(*starts, ds.window_ + target_lookahead(rep), n, dir + "/" + key);

  ds.starts_ = std::move(starts);
  ds.timestamps_ = std::move(timestamps);
  ds.stats_ = stats_from_manifest(*manifest);
  ds.manifest_ = std::move(manifest);
  return ds;
}

WindowDataset WindowDataset::from_series(Tensor series, std::vector<int64_t> starts, int64_t window,
                                         FeatureStats stats, Split split,
                                         Representation representation) {
  const int64_t F = input_count(representation) + stored_target_count(representation);
  CHECK(series.defined() && series.dim() == 2 && series.size(1) == F &&
            series.dtype() == kFloat32 && series.device().is_cpu(),
        "WindowDataset::from_series: expected a float32 [N, {}] CPU series ({} representation), "
        "got {}",
        F, representation_name(representation),
        series.defined() ? series.describe() : std::string("an undefined tensor"));
  CHECK(window >= 1, "WindowDataset::from_series: window must be >= 1, got {}", window);
  WindowDataset ds;
  ds.split_ = split;
  ds.window_ = window;
  ds.series_ = series.contiguous();
  ds.representation_ = representation;
  check_starts(starts, window + target_lookahead(representation), ds.series_.size(0),
               "WindowDataset::from_series");
  ds.starts_ = std::make_shared<std::vector<int64_t>>(std::move(starts));
  ds.timestamps_ = std::make_shared<std::vector<int64_t>>();
  ds.manifest_ = std::make_shared<nlohmann::json>();
  ds.stats_ = stats;
  return ds;
}

Tensor WindowDataset::window_at(int64_t i) const {
  CHECK(i >= 0 && i < size(), "WindowDataset::window_at: index {} outside [0, {}) ({} split)", i,
        size(), split_name(split_));
  return series_.narrow(0, (*starts_)[static_cast<size_t>(i)], window_);
}

Tensor WindowDataset::to_prices(const Tensor& z) const {
  CHECK(representation_ == Representation::Level,
        "WindowDataset::to_prices: the {} representation maps back through each row's close "
        "(data/representation.h's TargetSpace), not through the statistics alone",
        representation_name(representation_));
  return data::to_prices(z, stats_);
}

bool WindowDataset::synthetic() const {
  return manifest_->is_object() && manifest_->value("synthetic", false);
}

BatchLoader::BatchLoader(const WindowDataset& dataset, int64_t batch_size, uint64_t seed,
                         bool shuffle, Device device, bool drop_last)
    : dataset_(dataset),
      batch_size_(batch_size),
      seed_(seed),
      shuffle_(shuffle),
      device_(device),
      drop_last_(drop_last) {
  CHECK(batch_size >= 1, "BatchLoader: batch size must be >= 1, got {}", batch_size);
  CHECK(dataset.size() > 0, "BatchLoader: the {} split has no window", split_name(dataset.split()));
  CHECK(!drop_last || dataset.size() >= batch_size,
        "BatchLoader: drop_last with batch size {} leaves no batch of the {} split's {} windows",
        batch_size, split_name(dataset.split()), dataset.size());
  if (device.is_cuda()) {
#ifdef MT_WITH_CUDA
    CHECK(cuda::available(), "BatchLoader: device {} requested but no GPU is available",
          device.str());
    series_device_ = dataset.series().to(device);  // the one upload of the series
#else
    FAIL("BatchLoader: device {} requested, but this build has no CUDA support", device.str());
#endif
  }
}

BatchLoader::~BatchLoader() { wait_prefetch(); }

void BatchLoader::set_shard(int rank, int world) {
  CHECK(world >= 1 && rank >= 0 && rank < world, "BatchLoader::set_shard: rank {} of {} ranks",
        rank, world);
  const int64_t windows = shard_length(dataset_.size(), world, ShardTail::Drop);
  CHECK(windows >= 1 && (!drop_last_ || windows >= batch_size_),
        "BatchLoader: the {} split's {} windows over {} ranks leave {} per rank: not one batch "
        "of {} (lower the batch size or the number of GPUs, or prepare more data)",
        split_name(dataset_.split()), dataset_.size(), world, windows, batch_size_);
  wait_prefetch();
  rank_ = rank;
  world_ = world;
  started_ = false;  // the shard applies from the next start_epoch
}

int64_t BatchLoader::epoch_windows() const {
  return shard_length(dataset_.size(), world_, ShardTail::Drop);
}

int64_t BatchLoader::size() const {
  const int64_t n = epoch_windows();
  return drop_last_ ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
}

void BatchLoader::start_epoch(int64_t epoch, int64_t batch) {
  CHECK(epoch >= 0, "BatchLoader::start_epoch: epoch must be >= 0, got {}", epoch);
  CHECK(batch >= 0 && batch <= size(),
        "BatchLoader::start_epoch: batch {} outside [0, {}] (batches per epoch)", batch, size());
  wait_prefetch();
  epoch_ = epoch;
  batch_ = batch;
  started_ = true;
  const int64_t n = dataset_.size();
  if (shuffle_) {
    order_ = shuffled_order(n, seed_ ^ kShuffleKey, static_cast<uint64_t>(epoch));
  } else {
    order_.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) order_[static_cast<size_t>(i)] = i;
  }
  if (world_ > 1) order_ = shard_of(order_, rank_, world_, ShardTail::Drop);
  row_starts_.resize(order_.size());
  for (size_t i = 0; i < order_.size(); ++i) {
    row_starts_[i] = dataset_.starts()[static_cast<size_t>(order_[i])];
  }
  if (device_.is_cuda()) {
    // Once per epoch: the only host-to-device copy the loader makes after construction.
    starts_device_ =
        Tensor::from_vector(row_starts_, {static_cast<int64_t>(row_starts_.size())}).to(device_);
  } else if (batch_ < size()) {
    prefetch(batch_);
  }
}

bool BatchLoader::next(Tensor& out) {
  CHECK(started_, "BatchLoader::next: call start_epoch(epoch) first");
  if (batch_ >= size()) return false;
  cuda::NvtxRange range("data");
  if (device_.is_cuda()) {
    out = gather_gpu(batch_);
  } else {
    if (pending_batch_ != batch_) prefetch(batch_);
    out = pending_.get();
    pending_batch_ = -1;
    if (batch_ + 1 < size()) prefetch(batch_ + 1);
  }
  ++batch_;
  return true;
}

void BatchLoader::prefetch(int64_t batch) {
  wait_prefetch();
  pending_batch_ = batch;
  // A thread per batch: ~20 us to start, against ~100 us to copy 32 windows of 2048 x 5 floats.
  pending_ = std::async(std::launch::async, [this, batch] { return assemble_cpu(batch); });
}

void BatchLoader::wait_prefetch() {
  if (pending_.valid()) pending_.wait();
  pending_ = std::future<Tensor>();
  pending_batch_ = -1;
}

Tensor BatchLoader::assemble_cpu(int64_t batch) const {
  const int64_t first = batch * batch_size_;
  const int64_t b = std::min(batch_size_, epoch_windows() - first);
  const int64_t t = dataset_.window(), F = dataset_.columns();
  Tensor out = Tensor::empty({b, t, F}, kFloat32);
  const float* series = dataset_.series().data<float>();
  float* dst = out.data<float>();
  const size_t window_floats = static_cast<size_t>(t * F);
  for (int64_t i = 0; i < b; ++i) {
    const int64_t row = row_starts_[static_cast<size_t>(first + i)];
    std::memcpy(dst + static_cast<size_t>(i) * window_floats, series + static_cast<size_t>(row * F),
                window_floats * sizeof(float));
  }
  return out;
}

Tensor BatchLoader::gather_gpu(int64_t batch) const {
#ifdef MT_WITH_CUDA
  const int64_t first = batch * batch_size_;
  const int64_t b = std::min(batch_size_, epoch_windows() - first);
  const int64_t F = dataset_.columns();
  Tensor out = Tensor::empty({b, dataset_.window(), F}, kFloat32, device_);
  cuda::launch_gather_windows(out.data<float>(), series_device_.data<float>(),
                              starts_device_.data<int64_t>() + first, b, dataset_.window(), F);
  return out;
#else
  (void)batch;
  FAIL("BatchLoader: this build has no CUDA support");
#endif
}

}  // namespace mt::data
