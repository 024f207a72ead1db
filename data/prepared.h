// The prepared dataset: what `prepare` writes and the loader reads.
//
//   DIR/series.f32          the representation's standardized columns, little-endian float32,
//                           row-major [N, inputs + stored targets] (data/representation.h:
//                           level: 5 z-scored log features; scale_free: 12 inputs, then the 5
//                           targets of the next minute); memory-mappable as is
//   DIR/candles.f64         the cleaned candles, float64 [N, 5] (open, high, low, close in USD,
//                           volume in BTC): what evaluation scores and maps back to
//   DIR/timestamps.i64      Unix seconds of each row, little-endian int64 [N]
//   DIR/windows_train.i64   window start rows of each split, little-endian int64, ascending
//   DIR/windows_val.i64
//   DIR/windows_test.i64
//   DIR/manifest.json       format and version; sources (path, bytes, CRC-32 of the text, rows);
//                           rows read, kept and dropped by reason; time range; gaps; segments;
//                           representation, column names and per-column mean/std; window,
//                           stride, target lookahead; split mode,
//                           boundaries, row ranges and window counts; every file's shape, size
//                           and CRC-32
//
// Every file is written to a temporary name, then renamed, and the manifest last: a reader sees
// either the previous dataset or the complete new one. Reading checks the format, the version,
// each file's size against its shape and its CRC-32, and names the file and the problem.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/clean.h"
#include "data/csv_reader.h"
#include "data/representation.h"
#include "data/transform.h"
#include "data/windows.h"

namespace mt::data {

constexpr const char* kPreparedFormat = "minitensor-btc-minutes";
constexpr int kPreparedVersion = 2;  // 2: representations, candles.f64

struct PrepareOptions {
  ReadOptions read;
  CleanOptions clean;
  SplitOptions split;
  Representation representation = Representation::ScaleFree;
  bool stats_all = false;  // z-score over every row, as the original did (leaks val/test)
  bool synthetic = false;  // recorded in the manifest: the data came from synthetic.h
};

// Reads, cleans, transforms and splits the CSV files and writes the dataset into out_dir
// (created when missing). Returns the manifest. `log` receives progress lines (may be null).
nlohmann::json prepare_dataset(const std::vector<std::string>& csv_paths,
                               const std::string& out_dir, const PrepareOptions& options,
                               void (*log)(const std::string&) = nullptr);

// The manifest of a prepared folder, with its format and version checked.
nlohmann::json read_manifest(const std::string& dir);

// One file of a prepared folder, named by its manifest key ("series", "timestamps",
// "windows_train", ...), read into dst, which holds dst_bytes: the size on disk and the
// manifest's size must both equal dst_bytes, and the CRC-32 must match.
void read_prepared_file(const std::string& dir, const nlohmann::json& manifest,
                        const std::string& key, void* dst, size_t dst_bytes);

// The shape of a file as the manifest lists it.
std::vector<int64_t> prepared_shape(const nlohmann::json& manifest, const std::string& key);

// A whole file of a prepared folder as a vector of T (its element type as written), checked as
// read_prepared_file checks it.
template <typename T>
std::vector<T> read_prepared_array(const std::string& dir, const nlohmann::json& manifest,
                                   const std::string& key) {
  int64_t n = 1;
  for (int64_t d : prepared_shape(manifest, key)) n *= d;
  std::vector<T> out(static_cast<size_t>(n));
  read_prepared_file(dir, manifest, key, out.data(), out.size() * sizeof(T));
  return out;
}

// The standardization of every stored column (inputs, then targets).
FeatureStats stats_from_manifest(const nlohmann::json& manifest);
// The representation a folder was prepared in ("level" for a manifest that names none).
Representation representation_of(const nlohmann::json& manifest);

// Writes bytes to path.tmp, then renames it over path.
void write_file_atomic(const std::string& path, const void* data, size_t nbytes);

}  // namespace mt::data
