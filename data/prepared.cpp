#include "data/prepared.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "base/error.h"
#include "cuda/nvtx.h"
#include "data/text_input.h"

namespace mt::data {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the prepared files are little-endian and written straight from memory");

using nlohmann::json;

void write_file_atomic(const std::string& path, const void* data, size_t nbytes) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  CHECK(f != nullptr, "cannot write '{}'", tmp);
  const bool ok = std::fwrite(data, 1, nbytes, f) == nbytes;
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed) {
    std::remove(tmp.c_str());
    FAIL("writing '{}' failed after {} bytes (disk full?)", tmp, nbytes);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  CHECK(!ec, "cannot rename '{}' to '{}': {}", tmp, path, ec.message());
}

namespace {

// Writes one array file and returns its manifest entry.
template <typename T>
json write_array(const std::string& dir, const std::string& name, const std::vector<T>& values,
                 const char* dtype, std::vector<int64_t> shape) {
  const size_t nbytes = values.size() * sizeof(T);
  write_file_atomic(dir + "/" + name, values.data(), nbytes);
  return json{{"name", name},
              {"dtype", dtype},
              {"shape", shape},
              {"bytes", nbytes},
              {"crc32", crc32_update(0, values.data(), nbytes)}};
}

json sources_json(const ReadReport& r) {
  json out = json::array();
  for (const SourceInfo& s : r.sources) {
    out.push_back({{"path", s.path},
                   {"file_bytes", s.file_bytes},
                   {"text_bytes", s.text_bytes},
                   {"text_crc32", s.crc32},
                   {"rows_read", s.rows_read}});
  }
  return out;
}

json gaps_json(const CleanReport& c, int64_t max_gap_minutes) {
  json list = json::array();
  // The full Kaggle file has a few hundred gaps; the first 1,000 are listed, all are counted.
  for (size_t i = 0; i < c.gaps.size() && i < 1000; ++i) {
    list.push_back({{"after_ts", c.gaps[i].after_ts},
                    {"after_utc", format_utc(c.gaps[i].after_ts)},
                    {"missing_minutes", c.gaps[i].missing_minutes}});
  }
  json g{{"count", c.gaps.size()},
         {"missing_minutes", c.missing_minutes},
         {"max_gap_minutes", max_gap_minutes},
         {"list", list}};
  if (const Gap* l = c.longest_gap()) {
    g["longest"] = {{"after_utc", format_utc(l->after_ts)},
                    {"missing_minutes", l->missing_minutes}};
  }
  return g;
}

json split_json(const SplitPlan& plan) {
  const SplitOptions& o = plan.options;
  json s{{"mode", split_mode_name(o.mode)},
         {"fractions", {o.fractions[0], o.fractions[1], o.fractions[2]}},
         {"leaky", o.mode == SplitMode::ShuffledBlocks}};
  json windows, rows;
  for (int k = 0; k < kSplits; ++k) {
    windows[split_name(static_cast<Split>(k))] = plan.starts[k].size();
    rows[split_name(static_cast<Split>(k))] = {plan.rows[k].begin, plan.rows[k].end};
  }
  s["windows"] = windows;
  if (o.mode == SplitMode::Chronological) {
    s["rows"] = rows;
    s["val_start_ts"] = plan.boundary_ts[0];
    s["test_start_ts"] = plan.boundary_ts[1];
    s["val_start_utc"] = format_utc(plan.boundary_ts[0]);
    s["test_start_utc"] = format_utc(plan.boundary_ts[1]);
  } else {
    s["block_windows"] = o.block_windows;
    s["seed"] = o.seed;
  }
  return s;
}

json transform_json(const FeatureStats& stats, const PrepareOptions& o) {
  const Representation r = o.representation;
  json t{{"representation", representation_name(r)},
         {"inputs", input_names(r)},
         {"targets", stored_target_names(r)},
         {"zscore", "per column, population std (ddof 0)"},
         {"invalid_price_fill", o.clean.invalid_price_fill},
         {"stats_from", o.stats_all ? "all" : "train"},
         {"mean", stats.mean},
         {"std", stats.std}};
  if (r == Representation::Level) {
    t["prices"] = "log";
    t["volume"] = "log1p";
  } else {
    t["volume_level_minutes"] = kVolumeLevelMinutes;
    t["volume_day_minutes"] = kVolumeDayMinutes;
    t["volume_floor_btc"] = kVolumeFloor;
  }
  return t;
}

// The rows whose targets are defined: each range cut by the segments, less each segment's last
// row (it has no next minute).
std::vector<Segment> rows_with_targets(const std::vector<Segment>& ranges,
                                       const std::vector<Segment>& segments) {
  std::vector<Segment> out;
  for (const Segment& r : ranges) {
    for (const Segment& s : segments) {
      const int64_t b = std::max(r.begin, s.begin), e = std::min(r.end, s.end - 1);
      if (e > b) out.push_back({b, e});
    }
  }
  return out;
}

// Per-column statistics of the representation's table: inputs over `ranges`, stored targets
// over the rows of `ranges` that have one.
FeatureStats column_stats(Representation r, const std::vector<double>& table,
                          const std::vector<Segment>& ranges,
                          const std::vector<Segment>& segments) {
  const int n_in = input_count(r), n_tgt = stored_target_count(r);
  FeatureStats s = compute_column_stats(table, n_in + n_tgt, 0, n_in, ranges);
  if (n_tgt > 0) {
    const FeatureStats t =
        compute_column_stats(table, n_in + n_tgt, n_in, n_tgt, rows_with_targets(ranges, segments));
    s.mean.insert(s.mean.end(), t.mean.begin(), t.mean.end());
    s.std.insert(s.std.end(), t.std.begin(), t.std.end());
  }
  return s;
}

}  // namespace

json prepare_dataset(const std::vector<std::string>& csv_paths, const std::string& out_dir,
                     const PrepareOptions& options, void (*log)(const std::string&)) {
  cuda::NvtxRange range("data_prepare");
  auto say = [&](const std::string& line) {
    if (log) log(line);
  };
  ReadReport read_report;
  Candles rows = read_candles(csv_paths, options.read, &read_report);
  say("read: " + read_report.summary());
  for (const std::string& e : read_report.examples) say("  skipped: " + e);
  CleanReport clean_report;
  clean_candles(rows, options.clean, &clean_report);
  say("clean: " + clean_report.summary());
  const Representation rep = options.representation;
  SplitOptions split = options.split;
  split.lookahead = target_lookahead(rep);
  const SplitPlan plan = plan_splits(rows, clean_report.segments, split);
  say(fmt::format("windows of {} rows every {}: train {}, val {}, test {} ({})",
                  options.split.window, options.split.stride, plan.starts[0].size(),
                  plan.starts[1].size(), plan.starts[2].size(),
                  split_mode_name(options.split.mode)));

  const int64_t n = static_cast<int64_t>(rows.size());
  std::vector<int64_t> timestamps(rows.size());
  std::vector<double> candles(rows.size() * kFeatures);
  for (size_t i = 0; i < rows.size(); ++i) {
    timestamps[i] = rows[i].ts;
    for (int f = 0; f < kFeatures; ++f) candles[i * kFeatures + f] = rows[i].v[f];
  }
  const int F = input_count(rep) + stored_target_count(rep);
  std::vector<float> series;
  FeatureStats stats;
  {
    const std::vector<double> table = raw_columns(rep, rows, clean_report.segments);
    rows = Candles();  // 160 MB for the full file: free it before the next copies
    stats =
        column_stats(rep, table, options.stats_all ? std::vector<Segment>{{0, n}} : plan.train_rows,
                     clean_report.segments);
    series = standardize(table, F, stats);
  }

  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  CHECK(!ec, "cannot create the output folder '{}': {}", out_dir, ec.message());
  json files;
  files["series"] = write_array(out_dir, "series.f32", series, "float32", {n, F});
  files["candles"] = write_array(out_dir, "candles.f64", candles, "float64", {n, kFeatures});
  files["timestamps"] = write_array(out_dir, "timestamps.i64", timestamps, "int64", {n});
  for (int k = 0; k < kSplits; ++k) {
    const std::string key = std::string("windows_") + split_name(static_cast<Split>(k));
    files[key] = write_array(out_dir, key + ".i64", plan.starts[k], "int64",
                             {static_cast<int64_t>(plan.starts[k].size())});
  }
  json dropped = json::object();
  for (const auto& [reason, count] : read_report.dropped) dropped[reason] = count;
  json manifest{
      {"format", kPreparedFormat},
      {"version", kPreparedVersion},
      {"synthetic", options.synthetic},
      {"sources", sources_json(read_report)},
      {"rows",
       {{"read", read_report.rows_read},
        {"kept_by_reader", read_report.rows_kept},
        {"dropped", dropped},
        {"bad_row_policy", options.read.on_bad_row == BadRowPolicy::Skip ? "skip" : "error"},
        {"blank_lines", read_report.blank_lines},
        {"duplicates_dropped", clean_report.duplicates},
        {"input_was_sorted", clean_report.was_sorted},
        {"zero_price_rows", clean_report.zero_price_rows},
        {"zero_price_fields_replaced", clean_report.zero_price_fields},
        {"final", n}}},
      {"time_range",
       {{"first_ts", clean_report.first_ts},
        {"last_ts", clean_report.last_ts},
        {"first_utc", format_utc(clean_report.first_ts)},
        {"last_utc", format_utc(clean_report.last_ts)}}},
      {"gaps", gaps_json(clean_report, options.clean.max_gap_minutes)},
      {"segments", clean_report.segments.size()},
      {"transform", transform_json(stats, options)},
      {"window", options.split.window},
      {"stride", options.split.stride},
      {"target_lookahead", split.lookahead},
      {"split", split_json(plan)},
      {"files", files}};
  const std::string text = manifest.dump(2) + "\n";
  write_file_atomic(out_dir + "/manifest.json", text.data(), text.size());
  say(fmt::format(
      "wrote {} ({} rows, {} representation: {} columns, {:.1f} MB)", out_dir, n,
      representation_name(rep), F,
      static_cast<double>(series.size() * sizeof(float) + candles.size() * sizeof(double)) / 1e6));
  return manifest;
}

json read_manifest(const std::string& dir) {
  const std::string path = dir + "/manifest.json";
  std::ifstream in(path);
  CHECK(in.good(),
        "no prepared dataset in '{}': '{}' is missing (run `make data` or "
        "`prepare --out {}`)",
        dir, path, dir);
  json m;
  try {
    in >> m;
  } catch (const json::exception& e) {
    FAIL("'{}' is not valid JSON ({}): the dataset is corrupt, prepare it again", path, e.what());
  }
  CHECK(m.is_object() && m.value("format", "") == kPreparedFormat,
        "'{}' is not a prepared BTC dataset (format '{}', expected '{}')", path,
        m.is_object() ? m.value("format", "") : "", kPreparedFormat);
  CHECK(m.value("version", -1) == kPreparedVersion,
        "'{}' has format version {}, this build reads version {}: prepare the data again", path,
        m.value("version", -1), kPreparedVersion);
  return m;
}

namespace {

const json& file_entry(const json& manifest, const std::string& key) {
  const json* files = manifest.contains("files") ? &manifest["files"] : nullptr;
  CHECK(files && files->is_object() && files->contains(key) && (*files)[key].is_object(),
        "manifest.json lists no file '{}': the dataset is corrupt, prepare it again", key);
  return (*files)[key];
}

}  // namespace

std::vector<int64_t> prepared_shape(const json& manifest, const std::string& key) {
  const json& entry = file_entry(manifest, key);
  try {
    return entry.at("shape").get<std::vector<int64_t>>();
  } catch (const json::exception& e) {
    FAIL("manifest.json: files.{}.shape missing or malformed ({})", key, e.what());
  }
}

void read_prepared_file(const std::string& dir, const json& manifest, const std::string& key,
                        void* dst, size_t dst_bytes) {
  const json& entry = file_entry(manifest, key);
  const std::string path = dir + "/" + entry.value("name", key);
  const size_t listed = entry.value("bytes", size_t{0});
  CHECK(listed == dst_bytes, "manifest.json: files.{} lists {} bytes, its shape needs {}", key,
        listed, dst_bytes);
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  CHECK(!ec, "prepared file '{}' is missing", path);
  CHECK(size == dst_bytes,
        "prepared file '{}' has {} bytes, the manifest says {} (truncated or "
        "replaced): prepare the data again",
        path, size, dst_bytes);
  std::ifstream in(path, std::ios::binary);
  in.read(static_cast<char*>(dst), static_cast<std::streamsize>(dst_bytes));
  CHECK(in.gcount() == static_cast<std::streamsize>(dst_bytes), "cannot read '{}'", path);
  const uint32_t crc = crc32_update(0, dst, dst_bytes);
  const uint32_t listed_crc = entry.value("crc32", uint32_t{0});
  CHECK(crc == listed_crc,
        "prepared file '{}' is corrupt: CRC-32 {:08x}, the manifest says {:08x}: prepare the "
        "data again",
        path, crc, listed_crc);
}

FeatureStats stats_from_manifest(const json& manifest) {
  try {
    const json& t = manifest.at("transform");
    FeatureStats s(0);
    s.mean = t.at("mean").get<std::vector<double>>();
    s.std = t.at("std").get<std::vector<double>>();
    const std::vector<int64_t> shape = prepared_shape(manifest, "series");
    CHECK(shape.size() == 2 && s.columns() == shape[1] && s.std.size() == s.mean.size(),
          "manifest: transform lists {} means and {} stds for a series of shape {}", s.mean.size(),
          s.std.size(), shape_str(shape));
    return s;
  } catch (const json::exception& e) {
    FAIL("manifest: transform.mean/std missing or malformed ({})", e.what());
  }
}

Representation representation_of(const json& manifest) {
  const json& t = manifest.contains("transform") ? manifest["transform"] : json::object();
  return parse_representation(t.value("representation", std::string("level")));
}

}  // namespace mt::data
