// The run configuration: schema defaults, file and --set overrides, and every error path.
#include <filesystem>

#include "tests/test_util.h"
#include "training/config.h"
#include "training/run_config.h"

using namespace mt;
using namespace mt::training;

TEST_SUITE("train") {
  TEST_CASE("config: defaults, file values and --set overrides layer in that order") {
    const ConfigSchema& s = run_schema();
    const json file = {{"trainer", {{"epochs", 3}, {"clip", 0.25}}}, {"model", {{"d_model", 32}}}};
    const json c = s.resolve(file, {"trainer.epochs=7", "trainer.device=cuda",
                                    "trainer.loss_weights=[1,2,3,4,5]", "model.target=delta"});
    CHECK(c["trainer"]["epochs"] == 7);       // --set beats the file
    CHECK(c["trainer"]["clip"] == 0.25);      // the file beats the default
    CHECK(c["trainer"]["batch_size"] == 32);  // the default
    CHECK(c["trainer"]["device"] == "cuda");  // a bare word is a string
    CHECK(c["model"]["d_model"] == 32);
    CHECK(c["model"]["target"] == "delta");
    CHECK(c["trainer"]["loss_weights"] == json::array({1, 2, 3, 4, 5}));
    CHECK(c["optimizer"]["weight_decay"].is_null());  // left to the optimizer's own default
    CHECK(section_without_nulls(c, "optimizer").contains("weight_decay") == false);
    const TrainerOptions o = TrainerOptions::from_config(c);
    CHECK(o.epochs == 7);
    CHECK(o.clip == 0.25);
    CHECK(o.loss_weights == std::vector<double>{1, 2, 3, 4, 5});
  }

  TEST_CASE("config: an unknown key or section is an error that names it") {
    const ConfigSchema& s = run_schema();
    CHECK_THROWS_WITH_TEXT(s.resolve({{"trainer", {{"epoch", 3}}}}, {}),
                           "unknown config key 'trainer.epoch' (did you mean 'trainer.epochs'?)");
    CHECK_THROWS_WITH_TEXT(s.resolve({{"traner", {{"epochs", 3}}}}, {}),
                           "unknown config section 'traner'");
    CHECK_THROWS_WITH_TEXT(s.resolve(json::object(), {"model.d_modle=3"}),
                           "unknown config key 'model.d_modle' in --set (did you mean "
                           "'model.d_model'?)");
    CHECK_THROWS_WITH_TEXT(s.resolve({{"trainer", 5}}, {}),
                           "config section 'trainer' must be a JSON object, got integer");
  }

  TEST_CASE("config: wrong types, bad choices and malformed --set are errors") {
    const ConfigSchema& s = run_schema();
    CHECK_THROWS_WITH_TEXT(
        s.resolve({{"trainer", {{"epochs", 2.5}}}}, {}),
        "config key 'trainer.epochs': expected integer (like 10), got number 2.5");
    CHECK_THROWS_WITH_TEXT(s.resolve({{"trainer", {{"clip", "big"}}}}, {}),
                           "config key 'trainer.clip': expected number");
    CHECK_THROWS_WITH_TEXT(s.resolve(json::object(), {"model.target=price"}),
                           "config key 'model.target': 'price' is not one of level, delta");
    CHECK_THROWS_WITH_TEXT(s.resolve(json::object(), {"trainer.epochs"}),
                           "--set expects key=value, got 'trainer.epochs'");
    CHECK_THROWS_WITH_TEXT(s.resolve(json::object(), {"trainer.epochs=many"}),
                           "config key 'trainer.epochs': expected integer");
    // Values that fit the schema but not the trainer.
    CHECK_THROWS_WITH_TEXT(
        TrainerOptions::from_config(s.resolve(json::object(), {"trainer.loss_weights=[1,1]"})),
        "trainer.loss_weights has 2 values, model.n_features is 5");
    CHECK_THROWS_WITH_TEXT(
        TrainerOptions::from_config(s.resolve(json::object(), {"trainer.batch_size=0"})),
        "trainer.batch_size must be >= 1, got 0");
  }

  TEST_CASE("config: --help lists every key with its default") {
    const std::string help = run_schema().help_text();
    for (const ConfigOption& o : run_schema().options()) {
      INFO(o.key);
      CHECK(help.find(o.key) != std::string::npos);
    }
    CHECK(help.find("trainer.epochs") != std::string::npos);
    CHECK(help.find("[level|delta]") != std::string::npos);
    CHECK(help.find("10") != std::string::npos);
  }

  TEST_CASE("config: the shipped configs resolve") {
    for (const char* path :
         {"models/configs/btc.json", "models/configs/btc_seed.json", "models/configs/tiny.json"}) {
      INFO(path);
      REQUIRE(std::filesystem::exists(path));
      const json c = run_schema().resolve(read_json_file(path), {});
      const TrainerOptions o = TrainerOptions::from_config(c);
      CHECK(o.window >= 2);
    }
    // The default and the CPU default share the scale-free representation; the seed keeps its
    // recipe (issue 15): level targets, smooth L1 beta 0.01, weights [1,1,1,1,0.25], 8
    // micro-batches, 10 epochs, patience 10, at most 100 validation batches.
    for (const char* path : {"models/configs/btc.json", "models/configs/tiny.json"}) {
      const json c = run_schema().resolve(read_json_file(path), {});
      CHECK(c["data"]["representation"] == "scale_free");
      CHECK(c["model"]["n_inputs"] == 12);
    }
    const TrainerOptions seed = TrainerOptions::from_config(
        run_schema().resolve(read_json_file("models/configs/btc_seed.json"), {}));
    CHECK(seed.representation == "level");
    CHECK(seed.loss == "smooth_l1");
    CHECK(seed.loss_beta == 0.01);
    CHECK(seed.loss_weights == std::vector<double>{1, 1, 1, 1, 0.25});
    CHECK(seed.accumulation == 8);
    CHECK(seed.epochs == 10);
    CHECK(seed.early_stopping_patience == 10);
    CHECK(seed.val_batches == 100);
    CHECK_THROWS_WITH_TEXT(read_json_file("/nonexistent/config.json"),
                           "cannot read '/nonexistent/config.json'");
  }
}
