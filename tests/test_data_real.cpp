// The real June 2023 minute file, prepared end to end. Skipped (and said so) when
// ../shared/data is absent, as on CI.
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "data/loader.h"
#include "data/prepared.h"
#include "tests/test_util.h"

using namespace mt;
using namespace mt::data;
namespace fs = std::filesystem;

TEST_SUITE("data") {
  TEST_CASE("data real: btcusd_1-min_2023-06.csv prepared end to end") {
    const std::string csv = "../shared/data/btcusd_1-min_2023-06.csv";
    if (!fs::exists(csv)) {
      std::printf(
          "[tests] data real: SKIPPED, %s is absent (the real-data check needs ../shared)\n",
          csv.c_str());
      MESSAGE("skipped: " << csv << " is absent");
      return;
    }
    const fs::path out =
        fs::temp_directory_path() / ("mt_test_data_real_" + std::to_string(::getpid()));
    PrepareOptions o;  // the defaults: window 2048, stride 512, 0.8/0.1/0.1, train statistics
    o.representation = Representation::Level;  // five columns that map back by themselves
    const nlohmann::json m = prepare_dataset({csv}, out.string(), o);
    // The README of ../shared/data: 43,200 rows, one gap-free month.
    CHECK(m["rows"]["read"] == 43200);
    CHECK(m["rows"]["final"] == 43200);
    CHECK(m["gaps"]["count"] == 0);
    CHECK(m["segments"] == 1);
    CHECK(m["time_range"]["first_utc"] == "2023-06-01 00:00 UTC");
    CHECK(m["time_range"]["last_utc"] == "2023-06-30 23:59 UTC");
    // 43,200 minutes cut at 34,560 and 38,880: windows_in = (L - 2048) / 512 + 1.
    CHECK(m["split"]["rows"]["train"][1] == 34560);
    CHECK(m["split"]["rows"]["val"][1] == 38880);
    CHECK(m["split"]["windows"]["train"] == (34560 - 2048) / 512 + 1);
    CHECK(m["split"]["windows"]["val"] == (4320 - 2048) / 512 + 1);
    CHECK(m["split"]["windows"]["test"] == (4320 - 2048) / 512 + 1);

    WindowDataset test = WindowDataset::open(out.string(), Split::Test);
    CHECK(test.size() == 5);
    CHECK_FALSE(test.synthetic());
    BatchLoader loader(test, 2, 0, false);
    loader.start_epoch(0);
    Tensor batch;
    REQUIRE(loader.next(batch));
    CHECK(batch.shape() == Shape{2, 2048, 5});
    // The first test row back in USD: the CSV's line 38,882 (header + 38,880 rows before it).
    const std::vector<double> usd =
        test.to_prices(batch.select(0, 0).narrow(0, 0, 1)).to_vector<double>();
    Candles rows = read_candles({csv});
    const Candle& row = rows[38880];
    CHECK(test.timestamps()[38880] == row.ts);
    for (int f = 0; f < kFeatures; ++f)
      CHECK(usd[static_cast<size_t>(f)] == doctest::Approx(row.v[f]).epsilon(2e-5));
    fs::remove_all(out);
  }

}  // TEST_SUITE
