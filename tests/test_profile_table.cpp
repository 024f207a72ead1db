// The per-op time table (training/profile_table.h, `trainer.profile_steps`): the range timer's
// nesting, the aggregation by path on made-up times, and a profiled training run on the CPU
// (and on the GPU with CUDA events) whose table holds the step's phases and ops.
#include <map>
#include <thread>

#include "cuda/nvtx.h"
#include "tests/test_util.h"
#include "tests/train_fixtures.h"
#include "training/files.h"
#include "training/profile_table.h"

using namespace mt;
using namespace mt::training;
using namespace mt::testing;

namespace {

cuda::TimedRange range(const char* name, int parent, int depth, double ms) {
  return cuda::TimedRange{name, parent, depth, ms};
}

std::map<std::string, json> rows_by_path(const json& profile) {
  std::map<std::string, json> rows;
  for (const json& r : profile.at("rows")) rows[r.at("path").get<std::string>()] = r;
  return rows;
}

// The loaders of synthetic_data (train_fixtures.h) on `device`.
std::unique_ptr<RunData> data_on(Device device) {
  const Series s = synthetic_series(600);
  auto starts = [&](int64_t b, int64_t e) { return window_starts({{b, e}}, kWindow, kStride); };
  auto d = std::make_unique<RunData>();
  d->train =
      std::make_unique<ArrayLoader>(s, starts(0, 400), kWindow, kBatch, true, 7, true, device);
  d->val =
      std::make_unique<ArrayLoader>(s, starts(400, 500), kWindow, kBatch, false, 0, false, device);
  d->description = "synthetic test series";
  return d;
}

// A profiled run of the tiny config: the table's structure, whatever the clock.
// extra: paths that must be there too (the CUDA launchers' ranges on a GPU run).
void check_profiled_run(const std::string& device, Device data_device, int64_t steps,
                        const std::vector<std::string>& extra = {}) {
  TempDir tmp("mt_test_profile");
  const std::string dir = tmp.sub("run");
  auto trainer =
      Trainer::create(tiny_config(dir, {"trainer.device=" + device,
                                        "trainer.profile_steps=" + std::to_string(steps),
                                        "trainer.max_steps=" + std::to_string(steps + 1)}),
                      "profile", data_on(data_device));
  const TrainResult r = trainer->fit();
  CHECK(r.steps == steps + 1);
  REQUIRE(path_exists(dir + "/profile.txt"));
  const json profile = json::parse(read_file(dir + "/profile.json"));
  CHECK(profile.at("steps") == steps);
  const std::map<std::string, json> rows = rows_by_path(profile);
  // Every phase of a step, once a step.
  for (const char* path :
       {"step", "step/data", "step/forward", "step/loss", "step/backward", "step/optimizer"}) {
    CAPTURE(path);
    REQUIRE(rows.count(path) == 1);
    CHECK(rows.at(path).at("calls") == steps);
  }
  // The ops inside them: autograd functions and backward nodes, per call of the model.
  std::vector<std::string> ops = {"step/forward/linear",
                                  "step/forward/rmsnorm",
                                  "step/forward/add_rmsnorm",
                                  "step/forward/packed_attention",
                                  "step/forward/gelu_mlp",
                                  "step/backward/linear",
                                  "step/backward/packed_attention",
                                  "step/backward/gelu_mlp"};
  ops.insert(ops.end(), extra.begin(), extra.end());
  for (const std::string& path : ops) {
    CAPTURE(path);
    CHECK(rows.count(path) == 1);
  }
  // A range lies inside its parent: totals never exceed the parent's (a little slack for the
  // events' 0.5 us resolution), and a parent's children add up to at most its total.
  std::map<std::string, double> children_ms;
  for (const auto& [path, row] : rows) {
    const size_t cut = path.rfind('/');
    if (cut == std::string::npos) continue;
    const std::string parent = path.substr(0, cut);
    REQUIRE(rows.count(parent) == 1);
    const double ms = row.at("total_ms").get<double>();
    const double slack = 1e-3 * row.at("calls").get<double>();
    CHECK(ms <= rows.at(parent).at("total_ms").get<double>() + slack);
    CHECK(row.at("self_ms").get<double>() >= -slack);
    children_ms[parent] += ms;
  }
  const double step_ms = rows.at("step").at("total_ms").get<double>();
  CHECK(step_ms > 0);
  CHECK(children_ms["step"] <= step_ms + 1e-3 * steps);
  // The phases are nearly all of the step: its own glue is a few adds between them.
  CHECK(children_ms["step"] >= 0.5 * step_ms);
  const std::string table = read_file(dir + "/profile.txt");
  CHECK(table.find("backward") != std::string::npos);
  CHECK(table.find("% step") != std::string::npos);
}

}  // namespace

TEST_SUITE("train") {
  TEST_CASE("profile: the range timer records nested ranges of its own thread only") {
    cuda::range_timing_start(cuda::RangeClock::Host);
    {
      cuda::NvtxRange outer("outer");
      { cuda::NvtxRange inner("inner"); }
      std::thread other([] { cuda::NvtxRange elsewhere("elsewhere"); });
      other.join();
      cuda::range_timing_pause();
      { cuda::NvtxRange paused("paused"); }
      cuda::range_timing_resume();
      { cuda::NvtxRange second("second"); }
    }
    const std::vector<cuda::TimedRange> r = cuda::range_timing_stop();
    REQUIRE(r.size() == 3);
    CHECK(std::string(r[0].name) == "outer");
    CHECK(r[0].parent == -1);
    CHECK(std::string(r[1].name) == "inner");
    CHECK(r[1].parent == 0);
    CHECK(r[1].depth == 1);
    CHECK(std::string(r[2].name) == "second");
    CHECK(r[2].parent == 0);
    CHECK(r[0].ms >= r[1].ms + r[2].ms);
    // After the stop nothing records.
    { cuda::NvtxRange after("after"); }
    CHECK_FALSE(cuda::g_range_timing.load());
  }

  TEST_CASE("profile: ranges open across the start or the stop are left out") {
    cuda::NvtxRange before("before");  // opened untimed: its close must not disturb anything
    cuda::range_timing_start(cuda::RangeClock::Host);
    auto open = std::make_unique<cuda::NvtxRange>("open_at_stop");
    { cuda::NvtxRange child("child"); }
    const std::vector<cuda::TimedRange> r = cuda::range_timing_stop();
    open.reset();
    REQUIRE(r.size() == 1);
    CHECK(std::string(r[0].name) == "child");
    CHECK(r[0].parent == -1);  // its parent never closed while recording
    CHECK(r[0].depth == 0);
  }

  TEST_CASE("profile: rows sum calls, totals and self time by path, in tree order") {
    // Two steps: step > forward > linear; step > backward > linear, linear (second step only).
    const std::vector<cuda::TimedRange> ranges = {
        range("step", -1, 0, 10.0),   range("forward", 0, 1, 4.0), range("linear", 1, 2, 3.0),
        range("backward", 0, 1, 5.0), range("linear", 3, 2, 2.0),  range("step", -1, 0, 12.0),
        range("forward", 5, 1, 4.0),  range("linear", 6, 2, 2.5),  range("backward", 5, 1, 7.0),
        range("linear", 8, 2, 2.0),   range("linear", 8, 2, 1.5),
    };
    const std::vector<ProfileRow> rows = profile_rows(ranges);
    REQUIRE(rows.size() == 5);
    // Siblings by total: backward (12) before forward (8).
    CHECK(rows[0].path == "step");
    CHECK(rows[1].path == "step/backward");
    CHECK(rows[2].path == "step/backward/linear");
    CHECK(rows[3].path == "step/forward");
    CHECK(rows[4].path == "step/forward/linear");
    CHECK(rows[0].calls == 2);
    CHECK(rows[0].total_ms == 22.0);
    CHECK(rows[0].self_ms == 22.0 - 8.0 - 12.0);
    CHECK(rows[1].self_ms == 12.0 - 5.5);
    CHECK(rows[2].calls == 3);
    CHECK(rows[2].total_ms == 5.5);
    CHECK(rows[2].depth == 2);
    CHECK(rows[4].self_ms == 5.5);
    const std::string table = format_profile_table(rows, 2, "a test clock");
    CHECK(table.find("2 steps after a warm-up step, timed with a test clock: 11.000 ms a step") !=
          std::string::npos);
    // backward: 12 of 22 ms, 3 linear calls of 5.5 ms in all: 1833.3 us each.
    CHECK(table.find("54.5") != std::string::npos);
    CHECK(table.find("1833.3") != std::string::npos);
  }

  TEST_CASE("profile: a profiled CPU run prints the table of its steps and trains the same") {
    OneThread one;
    check_profiled_run("cpu", Device::cpu(), 3);
    // The profiler times; it changes no number of the run.
    TempDir tmp("mt_test_profile_same");
    auto plain =
        Trainer::create(tiny_config(tmp.sub("a"), {"trainer.max_steps=4"}), "p", synthetic_data(7));
    auto profiled = Trainer::create(
        tiny_config(tmp.sub("b"), {"trainer.max_steps=4", "trainer.profile_steps=2"}), "p",
        synthetic_data(7));
    CHECK(losses_of(plain->fit()) == losses_of(profiled->fit()));
    CHECK_THROWS_WITH_TEXT(
        TrainerOptions::from_config(tiny_config(tmp.sub("c"), {"trainer.profile_steps=-1"})),
        "profile_steps");
  }

  CUDA_TEST_CASE("cuda: profile: a profiled GPU run times its ranges with CUDA events") {
    check_profiled_run(
        "cuda", Device::cuda(), 3,
        {"step/forward/linear/gemm", "step/backward/linear/gemm", "step/optimizer/adamw_step"});
  }
}
