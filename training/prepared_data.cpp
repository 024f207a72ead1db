// open_prepared_data: the prepared dataset of `make data` as the trainer's three loaders, and
// the dataset's identity that a run records (dataset.json).
#include <cmath>
#include <filesystem>

#include "base/error.h"
#include "data/loader.h"
#include "data/prepared.h"
#include "training/trainer.h"

namespace mt::training {

using nlohmann::json;

namespace {

// The data layer's BatchLoader behind the trainer's interface: on the GPU it gathers each batch
// on the device from a series uploaded once (no host-to-device copy per step).
class BatchLoaderSplit : public SplitLoader {
 public:
  BatchLoaderSplit(const data::WindowDataset& ds, int64_t batch, uint64_t seed, bool shuffle,
                   Device device, bool drop_last)
      : loader_(ds, batch, seed, shuffle, device, drop_last) {}
  int64_t batches_per_epoch() const override { return loader_.size(); }
  int64_t windows() const override { return loader_.dataset().size(); }
  int64_t window() const override { return loader_.dataset().window(); }
  void set_shard(int rank, int world) override { loader_.set_shard(rank, world); }
  void start_epoch(int epoch, int64_t skip) override { loader_.start_epoch(epoch, skip); }
  bool next(Tensor& batch) override { return loader_.next(batch); }

 private:
  data::BatchLoader loader_;
};

}  // namespace

RunData open_prepared_data(const TrainerOptions& opts, Device device) {
  const std::string& dir = opts.data_dir;
  const json manifest = data::read_manifest(dir);
  RunData out;
  out.representation = data::representation_of(manifest);
  out.stats = data::stats_from_manifest(manifest);
  const int64_t columns =
      data::input_count(out.representation) + data::stored_target_count(out.representation);
  const int64_t lookahead = data::target_lookahead(out.representation);
  const bool same = manifest.at("window").get<int64_t>() == opts.window &&
                    manifest.at("stride").get<int64_t>() == opts.stride;
  data::WindowDataset sets[data::kSplits];
  if (same) {
    for (int k = 0; k < data::kSplits; ++k) {
      sets[k] = data::WindowDataset::open(dir, static_cast<data::Split>(k));
    }
  } else {
    const json& split = manifest.at("split");
    CHECK(split.contains("rows"),
          "data: '{}' was prepared with windows of {} every {} in '{}' mode; windows of {} every "
          "{} can only be re-cut from a chronological split: prepare it again with the config's "
          "window and stride",
          dir, manifest.at("window").get<int64_t>(), manifest.at("stride").get<int64_t>(),
          split.value("mode", "?"), opts.window, opts.stride);
    const int64_t rows = data::prepared_shape(manifest, "series").at(0);
    Tensor series = Tensor::from_vector(data::read_prepared_array<float>(dir, manifest, "series"),
                                        {rows, columns});
    const int64_t max_gap = manifest.at("gaps").value("max_gap_minutes", int64_t{1});
    const auto segs =
        data::segments_of(data::read_prepared_array<int64_t>(dir, manifest, "timestamps"), max_gap);
    for (int k = 0; k < data::kSplits; ++k) {
      const json& r = split.at("rows").at(data::split_name(static_cast<data::Split>(k)));
      sets[k] = data::WindowDataset::from_series(
          series,
          window_starts_in(segs, {r.at(0).get<int64_t>(), r.at(1).get<int64_t>()}, opts.window,
                           opts.stride, lookahead),
          opts.window, out.stats, static_cast<data::Split>(k), out.representation);
    }
  }
  out.train = std::make_unique<BatchLoaderSplit>(sets[0], opts.batch_size, opts.seed,
                                                 /*shuffle=*/true, device, /*drop_last=*/true);
  out.val = std::make_unique<BatchLoaderSplit>(sets[1], opts.batch_size, 0, false, device, false);
  out.identity = prepared_dataset_identity(manifest);
  const json& tr = manifest.at("time_range");
  out.description = fmt::format(
      "data {} ({}{} representation, {} to {}, {} rows); windows of {} every {}: train {}, val {}, "
      "test {}",
      dir, manifest.value("synthetic", false) ? "SYNTHETIC, " : "",
      data::representation_name(out.representation), tr.value("first_utc", "?"),
      tr.value("last_utc", "?"), sets[0].rows(), opts.window, opts.stride, sets[0].size(),
      sets[1].size(), sets[2].size());
  return out;
}

json prepared_dataset_identity(const json& m) {
  json sources = json::array();
  for (const json& src : m.at("sources")) {
    sources.push_back({{"file", std::filesystem::path(src.value("path", "")).filename().string()},
                       {"path", src.value("path", "")},
                       {"file_bytes", src.value("file_bytes", int64_t{0})},
                       {"text_crc32", src.value("text_crc32", int64_t{0})},
                       {"rows_read", src.value("rows_read", int64_t{0})}});
  }
  const json& files = m.at("files");
  const json& split = m.at("split");
  json split_id{{"mode", split.value("mode", "")}, {"fractions", split.value("fractions", json())}};
  if (split.contains("rows")) split_id["rows"] = split["rows"];
  return json{{"synthetic", m.value("synthetic", false)},
              {"sources", sources},
              {"rows", m.at("rows").value("final", int64_t{0})},
              {"first_utc", m.at("time_range").value("first_utc", "")},
              {"last_utc", m.at("time_range").value("last_utc", "")},
              {"series_crc32", files.at("series").value("crc32", int64_t{0})},
              {"timestamps_crc32", files.at("timestamps").value("crc32", int64_t{0})},
              {"stats_from", m.at("transform").value("stats_from", "")},
              {"split", split_id}};
}

namespace {

// The identity without where the files lie: the same data moved or prepared from another
// folder is the same data.
json without_paths(json id) {
  for (json& src : id["sources"]) src.erase("path");
  return id;
}

}  // namespace

std::string describe_dataset(const json& id) {
  std::vector<std::string> files;
  for (const json& src : id.value("sources", json::array())) {
    files.push_back(src.value("file", "?"));
  }
  return fmt::format("{}{}, {} rows, {} to {}", id.value("synthetic", false) ? "SYNTHETIC " : "",
                     fmt::join(files, " + "), id.value("rows", int64_t{0}),
                     id.value("first_utc", "?"), id.value("last_utc", "?"));
}

std::string dataset_difference(const json& recorded, const json& now) {
  const json a = without_paths(recorded), b = without_paths(now);
  if (a == b) return "";
  std::vector<std::string> why;
  if (a.value("sources", json()) != b.value("sources", json())) {
    why.push_back("the source files (name, size, CRC-32 of the text or rows)");
  }
  if (a.value("series_crc32", json()) != b.value("series_crc32", json())) {
    why.push_back("the normalized series");
  }
  if (a.value("split", json()) != b.value("split", json())) why.push_back("the split");
  return fmt::format(
      "  the run's data: {}\n  data now:       {}\n  what differs:   {}",
      describe_dataset(recorded), describe_dataset(now),
      why.empty() ? std::string("details") : fmt::format("{}", fmt::join(why, "; ")));
}

}  // namespace mt::training
