// Starting, stopping and resuming runs on a prepared dataset, as a user meets them: a start that
// fails writes no run folder, a folder without a checkpoint starts its run over, a finished run
// trains on when given more epochs, a resume refuses other data unless told to switch, and a
// max_steps stop ends as a finished run does (validation, best checkpoint, test metrics).
#include <filesystem>
#include <string>

#include "data/prepared.h"
#include "data/synthetic.h"
#include "tests/test_util.h"
#include "tests/train_fixtures.h"
#include "training/config.h"
#include "training/evaluate.h"
#include "training/files.h"
#include "training/run_log.h"
#include "training/trainer.h"

using namespace mt;
using namespace mt::training;
using namespace mt::testing;

namespace {

// 1,500 minutes of the synthetic market prepared into `dir` with the fixtures' windows (32 every
// 16): rows [0, 1200) train, 74 windows, 18 steps of 4 an epoch.
void prepare_small(const std::string& dir, uint64_t seed = 1) {
  make_dirs(dir);
  data::SyntheticOptions so;
  so.minutes = 1500;
  so.seed = seed;
  so.gaps = 0;
  const std::string csv = dir + "/market.csv";
  data::write_synthetic_csv(csv, so);
  data::PrepareOptions po;
  po.split.window = kWindow;
  po.split.stride = kStride;
  po.synthetic = true;
  po.representation = data::Representation::Level;  // the fixtures' tiny config is level
  data::prepare_dataset({csv}, dir, po);
}

constexpr int64_t kStepsPerEpoch = 18;

json config_on(const std::string& out_dir, const std::string& data_dir,
               std::vector<std::string> extra = {}) {
  extra.insert(extra.begin(), "data.dir=" + data_dir);
  return tiny_config(out_dir, extra);
}

int64_t count_records(const std::string& run_dir, const std::string& kind) {
  int64_t n = 0;
  for (const json& r : read_run_log(run_dir + "/metrics.jsonl")) n += r.at("kind") == kind;
  return n;
}

}  // namespace

TEST_SUITE("train") {
  TEST_CASE("run folder: a start that fails writes nothing") {
    OneThread one;
    TempDir tmp("mt_test_failed_start");
    prepare_small(tmp.sub("data"));
    const std::string run = tmp.sub("run");
    CHECK_THROWS_WITH_TEXT(Trainer::create(config_on(run, tmp.sub("missing")), "f"),
                           "no prepared dataset");
    CHECK_FALSE(fs::exists(run));
    CHECK_THROWS_WITH_TEXT(
        Trainer::create(config_on(run, tmp.sub("data"), {"trainer.batch_size=100"}), "f"),
        "leaves no batch");
    CHECK_FALSE(fs::exists(run));
    if (!cuda::available()) {  // device cuda on a machine (or a build) without a GPU
      CHECK_THROWS(Trainer::create(config_on(run, tmp.sub("data"), {"trainer.device=cuda"}), "f"));
      CHECK_FALSE(fs::exists(run));
    }
    // A start that succeeds writes the folder, with the data's identity.
    Trainer::create(config_on(run, tmp.sub("data")), "f");
    CHECK(fs::exists(run + "/config.json"));
    CHECK(fs::exists(run + "/normalization.json"));
    CHECK(read_json_file(run + "/dataset.json")["synthetic"] == true);
  }

  TEST_CASE("resume: a folder without a checkpoint starts its run over from its config") {
    OneThread one;
    TempDir tmp("mt_test_resume_fresh");
    prepare_small(tmp.sub("data"));
    const TrainResult straight =
        Trainer::create(config_on(tmp.sub("straight"), tmp.sub("data")), "r")->fit();
    // A run killed before its first checkpoint: the folder holds config.json and no checkpoint.
    const std::string run = tmp.sub("killed");
    Trainer::create(config_on(run, tmp.sub("data")), "r");
    REQUIRE(fs::exists(run + "/config.json"));
    REQUIRE_FALSE(checkpoint_exists(run + "/checkpoints/last"));
    auto t = Trainer::resume(run, {});
    CHECK(t->state().step == 0);
    const TrainResult r = t->fit();
    CHECK(r.stop_reason == "finished");
    CHECK(r.steps == 2 * kStepsPerEpoch);
    CHECK(losses_of(r) == losses_of(straight));  // the same run, from its own seed
    CHECK(checkpoint_exists(run + "/checkpoints/last"));
  }

  TEST_CASE("resume: more epochs extend a finished run; nothing to do changes nothing") {
    OneThread one;
    TempDir tmp("mt_test_resume_extend");
    prepare_small(tmp.sub("data"));
    const TrainResult straight =
        Trainer::create(config_on(tmp.sub("straight"), tmp.sub("data")), "e")->fit();
    const std::string run = tmp.sub("run");
    CHECK(Trainer::create(config_on(run, tmp.sub("data"), {"trainer.epochs=1"}), "e")
              ->fit()
              .stop_reason == "finished");
    const std::string config_before = read_file(run + "/config.json");
    const std::string log_before = read_file(run + "/metrics.jsonl");
    // The same epochs, or fewer: nothing runs, and neither config.json nor the log changes.
    for (const char* set : {"trainer.epochs=1", "trainer.seed=8"}) {
      auto same = Trainer::resume(run, {set});
      CHECK_FALSE(same->has_work());
      CHECK(same->fit().stop_reason == "nothing_to_do");
      CHECK(read_file(run + "/config.json") == config_before);
      CHECK(read_file(run + "/metrics.jsonl") == log_before);
    }
    // Two epochs: the second one runs, as in a run asked for two from the start.
    auto longer = Trainer::resume(run, {"trainer.epochs=2"});
    const TrainResult r = longer->fit();
    CHECK(r.stop_reason == "finished");
    CHECK(r.epochs_done == 1);
    CHECK(r.steps == 2 * kStepsPerEpoch);
    const std::vector<double> tail = losses_of(r), all = losses_of(straight);
    REQUIRE(tail.size() == static_cast<size_t>(kStepsPerEpoch));
    for (size_t i = 0; i < tail.size(); ++i) CHECK(tail[i] == all[kStepsPerEpoch + i]);
    CHECK(read_json_file(run + "/config.json")["trainer"]["epochs"] == 2);
    CHECK(count_records(run, "epoch") == 2);
    // Asking for one epoch now is again nothing to do: config.json keeps the 2 that ran.
    CHECK(Trainer::resume(run, {"trainer.epochs=1"})->fit().stop_reason == "nothing_to_do");
    CHECK(read_json_file(run + "/config.json")["trainer"]["epochs"] == 2);
  }

  TEST_CASE("resume: other data is refused unless switching to it; evaluate refuses it too") {
    OneThread one;
    TempDir tmp("mt_test_resume_data");
    const std::string data = tmp.sub("data"), run = tmp.sub("run");
    prepare_small(data, /*seed=*/1);
    Trainer::create(config_on(run, data, {"trainer.epochs=1"}), "d")->fit();
    const json trained_on = read_json_file(run + "/dataset.json");
    // The same data prepared again elsewhere is the same data.
    prepare_small(tmp.sub("copy"), /*seed=*/1);
    CHECK(Trainer::resume(run, {"data.dir=" + tmp.sub("copy")})->fit().stop_reason ==
          "nothing_to_do");

    prepare_small(data, /*seed=*/2);  // the folder now holds another market
    const std::string config_before = read_file(run + "/config.json");
    CHECK_THROWS_WITH_TEXT(Trainer::resume(run, {"trainer.epochs=2"}),
                           "holds other data than this run was trained on");
    CHECK(read_file(run + "/config.json") == config_before);
    CHECK(read_json_file(run + "/dataset.json") == trained_on);
    EvalOptions eo;
    eo.run_dir = run;
    CHECK_THROWS_WITH_TEXT(evaluate_run(eo), "holds other data than run");
    CHECK_FALSE(fs::exists(run + "/metrics.md"));

    auto switched = Trainer::resume(run, {"trainer.epochs=2"}, nullptr, nullptr,
                                    /*switch_data=*/true);
    CHECK(switched->fit().stop_reason == "finished");
    CHECK(read_json_file(run + "/dataset.json") != trained_on);
    CHECK(dataset_difference(read_json_file(run + "/dataset.json"),
                             prepared_dataset_identity(data::read_manifest(data)))
              .empty());
    CHECK(evaluate_run(eo)["windows"].get<int64_t>() > 0);  // the run's data again
  }

  TEST_CASE("max_steps: a stop validates, keeps the best checkpoint and evaluates") {
    OneThread one;
    TempDir tmp("mt_test_max_steps_end");
    prepare_small(tmp.sub("data"));
    // In the middle of epoch 2, and at the end of epoch 1.
    for (int64_t stop : {kStepsPerEpoch + 7, kStepsPerEpoch}) {
      CAPTURE(stop);
      const std::string run = tmp.sub("run" + std::to_string(stop));
      auto t = Trainer::create(config_on(run, tmp.sub("data"),
                                         {"trainer.max_steps=" + std::to_string(stop),
                                          "trainer.evaluate=true", "trainer.log_every=5"}),
                               "m");
      const TrainResult r = t->fit();
      CHECK(r.stop_reason == "max_steps");
      CHECK(r.steps == stop);
      CHECK(r.logged_losses.back().first == stop);  // the last steps are logged, not dropped
      const bool mid_epoch = stop % kStepsPerEpoch != 0;
      CHECK(count_records(run, "val") == (mid_epoch ? 1 : 0));
      CHECK(count_records(run, "epoch") == 1);
      CHECK(std::isfinite(t->state().best_val_loss));
      CHECK(checkpoint_exists(run + "/checkpoints/best"));
      CHECK(load_checkpoint(run + "/checkpoints/last").state.step == stop);
      CHECK(fs::exists(run + "/metrics.md"));
      CHECK(fs::exists(run + "/predictions.csv"));
    }
  }
}
