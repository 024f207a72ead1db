// The prepared dataset (write, read, corruption), the synthetic market, and the batch loader.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "data/loader.h"
#include "data/prepared.h"
#include "data/synthetic.h"
#include "tests/test_util.h"

#ifdef MT_WITH_CUDA
#include "cuda/gather_windows.cuh"
#endif

using namespace mt;
using namespace mt::data;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("mt_test_data_loader_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string str() const { return path.string(); }
};

// A small synthetic market prepared with window 64, stride 16: a few hundred windows. The level
// representation: its five columns are the candle's own (tests of scale_free are in
// tests/test_data_representation.cpp).
std::string prepare_small(const TempDir& dir, int64_t minutes = 6000, bool stats_all = false) {
  SyntheticOptions so;
  so.minutes = minutes;
  so.seed = 3;
  const std::string csv = dir.str() + "/in.csv";
  write_synthetic_csv(csv, so);
  PrepareOptions po;
  po.split.window = 64;
  po.split.stride = 16;
  po.stats_all = stats_all;
  po.representation = Representation::Level;
  po.synthetic = true;  // as prepare --synthetic records it
  const std::string out = dir.str() + "/prepared";
  prepare_dataset({csv}, out, po);
  return out;
}

}  // namespace

TEST_SUITE("data") {
  TEST_CASE("data synthetic: the Kaggle layout, seeded, valid candles, a few gaps") {
    SyntheticOptions o;
    o.minutes = 3000;
    o.seed = 5;
    const std::string a = synthetic_csv(o);
    CHECK(a == synthetic_csv(o));
    o.seed = 6;
    CHECK(a != synthetic_csv(o));
    CHECK(a.rfind("Timestamp,Open,High,Low,Close,Volume\n", 0) == 0);
    ReadReport r;
    Candles c = read_candles_text(a, "synthetic", {}, &r);  // every row valid (errors otherwise)
    CHECK(r.rows_dropped() == 0);
    CHECK(c.size() < 3000);  // some minutes cut out as gaps
    CHECK(c.size() > 3000 - 3 * 120);
    CleanReport cr;
    clean_candles(c, {}, &cr);
    CHECK(cr.gaps.size() >= 1);
    CHECK(cr.zero_price_fields == 0);
    for (const Candle& k : c) {
      CHECK(k.v[2] <= std::min(k.v[0], k.v[3]));
      CHECK(k.v[1] >= std::max(k.v[0], k.v[3]));
    }
  }

  TEST_CASE("data prepared: prepare writes the files and a complete manifest; open reads them") {
    TempDir dir;
    const std::string out = prepare_small(dir);
    for (const char* f : {"series.f32", "candles.f64", "timestamps.i64", "windows_train.i64",
                          "windows_val.i64", "windows_test.i64", "manifest.json"}) {
      CHECK(fs::exists(out + "/" + f));
      CHECK_FALSE(fs::exists(out + "/" + f + ".tmp"));
    }
    const nlohmann::json m = read_manifest(out);
    CHECK(m["version"] == kPreparedVersion);
    CHECK(m["window"] == 64);
    CHECK(m["stride"] == 16);
    CHECK(m["rows"]["read"].get<int64_t>() == m["rows"]["final"].get<int64_t>());
    CHECK(m["gaps"]["count"].get<int64_t>() >= 1);
    CHECK(m["transform"]["stats_from"] == "train");
    CHECK(m["split"]["mode"] == "chronological");
    CHECK(m["sources"][0]["text_crc32"].get<uint32_t>() != 0);
    const int64_t n = m["rows"]["final"];

    WindowDataset train = WindowDataset::open(out, Split::Train);
    WindowDataset val = WindowDataset::open(out, Split::Val);
    CHECK(train.rows() == n);
    CHECK(train.window() == 64);
    CHECK(train.size() == m["split"]["windows"]["train"].get<int64_t>());
    CHECK(val.size() == m["split"]["windows"]["val"].get<int64_t>());
    CHECK(train.size() > 200);
    CHECK(val.size() > 10);
    CHECK(static_cast<int64_t>(train.timestamps().size()) == n);
    CHECK(train.synthetic());
    // Train rows are z-scored with train statistics: their features have mean ~0 and std ~1.
    const int64_t train_end = m["split"]["rows"]["train"][1];
    const std::vector<float> z = train.series().narrow(0, 0, train_end).to_vector<float>();
    for (int f = 0; f < kFeatures; ++f) {
      double s = 0, s2 = 0;
      for (int64_t i = 0; i < train_end; ++i) {
        s += z[static_cast<size_t>(i * kFeatures + f)];
        s2 += z[static_cast<size_t>(i * kFeatures + f)] * z[static_cast<size_t>(i * kFeatures + f)];
      }
      CHECK(std::fabs(s / train_end) < 1e-4);
      CHECK(std::sqrt(s2 / train_end) == doctest::Approx(1.0).epsilon(1e-4));
    }
    // The inverse transform gives the CSV's prices back (to float32 precision of z).
    const Tensor first = train.window_at(0).narrow(0, 0, 1);
    const std::vector<double> usd = train.to_prices(first).to_vector<double>();
    ReadReport rr;
    Candles csv = read_candles({dir.str() + "/in.csv"}, {}, &rr);
    const int64_t row0 = train.starts()[0];
    for (int f = 0; f < kFeatures; ++f) {
      CHECK(usd[static_cast<size_t>(f)] ==
            doctest::Approx(csv[static_cast<size_t>(row0)].v[f]).epsilon(1e-4));
    }
  }

  TEST_CASE("data prepared: a corrupt folder is an error that names the problem") {
    TempDir dir;
    const std::string out = prepare_small(dir, 3000);
    CHECK_THROWS_WITH_TEXT(WindowDataset::open(dir.str() + "/none", Split::Train),
                           "no prepared dataset in");
    fs::resize_file(out + "/windows_val.i64", 8);
    CHECK_THROWS_WITH_TEXT(WindowDataset::open(out, Split::Val), "windows_val.i64' has 8 bytes");
    CHECK_NOTHROW(WindowDataset::open(out, Split::Train));
    {  // a flipped byte in the series
      std::fstream f(out + "/series.f32", std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(100);
      f.put('\x7f');
    }
    CHECK_THROWS_WITH_TEXT(WindowDataset::open(out, Split::Train),
                           "series.f32' is corrupt: CRC-32");
    std::string text;
    {
      std::ifstream in(out + "/manifest.json");
      text.assign(std::istreambuf_iterator<char>(in), {});
    }
    const std::string version = fmt::format("\"version\": {}", kPreparedVersion);
    const size_t at = text.find(version);
    REQUIRE(at != std::string::npos);
    text.replace(at, version.size(), "\"version\": 99");
    std::ofstream(out + "/manifest.json") << text;
    CHECK_THROWS_WITH_TEXT(
        read_manifest(out),
        fmt::format("format version 99, this build reads version {}", kPreparedVersion).c_str());
    std::ofstream(out + "/manifest.json") << "{ not json";
    CHECK_THROWS_WITH_TEXT(read_manifest(out), "is not valid JSON");
  }

  TEST_CASE("data prepared: stats 'all' is recorded and changes the statistics") {
    TempDir dir;
    const std::string train_stats = prepare_small(dir, 3000, false);
    const double mean_train = read_manifest(train_stats)["transform"]["mean"][3];
    TempDir dir2;
    const std::string all_stats = prepare_small(dir2, 3000, true);
    const nlohmann::json m = read_manifest(all_stats);
    CHECK(m["transform"]["stats_from"] == "all");
    CHECK(m["transform"]["mean"][3].get<double>() != mean_train);
  }

  TEST_CASE("data loader: batches hold the windows, in time order without shuffle") {
    TempDir dir;
    const std::string out = prepare_small(dir);
    WindowDataset val = WindowDataset::open(out, Split::Val);
    BatchLoader loader(val, 5, 1, /*shuffle=*/false);
    CHECK(loader.size() == (val.size() + 4) / 5);
    loader.start_epoch(0);
    Tensor batch;
    int64_t seen = 0;
    while (loader.next(batch)) {
      CHECK(batch.dtype() == kFloat32);
      CHECK(batch.size(1) == 64);
      CHECK(batch.size(2) == 5);
      for (int64_t i = 0; i < batch.size(0); ++i) {
        CHECK(testing::max_abs_diff(batch.select(0, i), val.window_at(seen + i)) == 0);
      }
      seen += batch.size(0);
    }
    CHECK(seen == val.size());
    CHECK(loader.position().batch == loader.size());
    CHECK_FALSE(loader.next(batch));
  }

  TEST_CASE("data loader: the seeded shuffle is deterministic per epoch and resumable") {
    TempDir dir;
    const std::string out = prepare_small(dir);
    WindowDataset train = WindowDataset::open(out, Split::Train);
    BatchLoader a(train, 8, 42, true, Device::cpu(), /*drop_last=*/true);
    BatchLoader b(train, 8, 42, true, Device::cpu(), true);
    BatchLoader c(train, 8, 43, true, Device::cpu(), true);
    CHECK(a.size() == train.size() / 8);
    a.start_epoch(0);
    b.start_epoch(0);
    c.start_epoch(0);
    CHECK(a.epoch_order() == b.epoch_order());
    CHECK(a.epoch_order() != c.epoch_order());
    std::vector<Tensor> epoch0;
    Tensor x, y;
    while (a.next(x)) {
      REQUIRE(b.next(y));
      CHECK(x.size(0) == 8);
      CHECK(testing::max_abs_diff(x, y) == 0);
      epoch0.push_back(x);
    }
    a.start_epoch(1);
    CHECK(a.epoch_order() != b.epoch_order());  // b is still on epoch 0's order
    // Resume epoch 0 at batch 3: the same batches as the uninterrupted run.
    BatchLoader r(train, 8, 42, true, Device::cpu(), true);
    r.start_epoch(0, 3);
    CHECK(r.position().batch == 3);
    for (size_t k = 3; k < epoch0.size(); ++k) {
      REQUIRE(r.next(x));
      CHECK(testing::max_abs_diff(x, epoch0[k]) == 0);
    }
    CHECK_FALSE(r.next(x));
    CHECK_THROWS_WITH_TEXT(r.start_epoch(0, r.size() + 1), "outside [0,");
    BatchLoader fresh(train, 8, 42, true);
    CHECK_THROWS_WITH_TEXT(fresh.next(x), "call start_epoch");
    CHECK_THROWS_WITH_TEXT(BatchLoader(train, 0, 1, true), "batch size must be >= 1");
  }

  TEST_CASE("data loader: from_series datasets check their windows") {
    Tensor s = Tensor::arange(0, 50).reshape({10, 5});
    WindowDataset ds = WindowDataset::from_series(s, {0, 2, 6}, 4);
    CHECK(ds.size() == 3);
    CHECK(ds.window_at(2).to_vector<float>()[0] == 30.0f);
    CHECK_THROWS_WITH_TEXT(WindowDataset::from_series(s, {0, 7}, 4),
                           "end past the series' 10 rows");
    CHECK_THROWS_WITH_TEXT(WindowDataset::from_series(s.to(kFloat64), {0}, 4),
                           "expected a float32 [N, 5]");
  }

  CUDA_TEST_CASE("cuda: data loader gathers the same batches on the GPU as on the CPU") {
    TempDir dir;
    const std::string out = prepare_small(dir);
    WindowDataset train = WindowDataset::open(out, Split::Train);
    for (bool drop_last : {true, false}) {
      BatchLoader cpu(train, 7, 9, true, Device::cpu(), drop_last);
      BatchLoader gpu(train, 7, 9, true, Device::cuda(), drop_last);
      for (int64_t epoch : {0, 1}) {
        cpu.start_epoch(epoch);
        gpu.start_epoch(epoch);
        Tensor x, y;
        int64_t batches = 0;
        while (cpu.next(x)) {
          REQUIRE(gpu.next(y));
          CHECK(y.is_cuda());
          CHECK(y.shape() == x.shape());
          CHECK(testing::max_abs_diff(y.cpu(), x) == 0);
          ++batches;
        }
        CHECK_FALSE(gpu.next(y));
        CHECK(batches == gpu.size());
      }
    }
  }

#ifdef MT_WITH_CUDA
  CUDA_TEST_CASE("cuda: gather_windows writes every element of odd-sized batches") {
    // 1 row of 5 features per step; windows of 1, 7 and 2048 rows; batches of 1, 3 and 33.
    const int64_t n = 3000;
    Tensor series = Tensor::arange(0, static_cast<double>(n * 5)).reshape({n, 5});
    Tensor series_dev = series.cuda();
    for (int64_t t : {1, 7, 2048}) {
      for (int64_t b : {1, 3, 33}) {
        std::vector<int64_t> starts;
        for (int64_t i = 0; i < b; ++i) starts.push_back((i * 131) % (n - t + 1));
        Tensor starts_dev = Tensor::from_vector(starts, {b}).cuda();
        Tensor out = Tensor::empty({b, t, 5}, kFloat32, Device::cuda());
        testing::poison(out);
        cuda::launch_gather_windows(out.data<float>(), series_dev.data<float>(),
                                    starts_dev.data<int64_t>(), b, t, 5);
        CHECK(testing::all_written(out));
        Tensor expected = Tensor::empty({b, t, 5});
        for (int64_t i = 0; i < b; ++i) {
          expected.select(0, i).copy_(series.narrow(0, starts[static_cast<size_t>(i)], t));
        }
        CHECK(testing::max_abs_diff(out.cpu(), expected) == 0);
      }
    }
  }
#endif

}  // TEST_SUITE
