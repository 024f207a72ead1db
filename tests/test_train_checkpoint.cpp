// Checkpoint folders: a round trip, the interrupted-swap recovery, and every corruption error.
#include <filesystem>
#include <fstream>

#include "tests/test_util.h"
#include "training/checkpoint.h"
#include "training/files.h"

using namespace mt;
using namespace mt::training;
namespace fs = std::filesystem;

namespace {

TrainerState sample_state(int64_t step) {
  TrainerState s;
  s.epoch = 2;
  s.batch_in_epoch = 7;
  s.step = step;
  s.rng_seed = 42;
  s.rng_offset = 1234567890123ull;
  s.best_val_loss = 0.123456789012345;
  s.best_epoch = 1;
  s.nonfinite_total = 3;
  s.epoch_loss_sum = 1.0 / 3;
  s.epoch_loss_count = 9;
  s.pending_loss_sum = 0.25;
  s.pending_steps = 2;
  s.scheduler = {{"best", 0.5}, {"num_bad_epochs", 1}};
  return s;
}

void save_sample(const std::string& dir, int64_t step) {
  std::map<std::string, Tensor> model{
      {"fc_out.weight", Tensor::from_doubles({1, 2, 3, 4, 5, 6}, {2, 3})},
      {"fc_out.bias", Tensor::from_doubles({0.5, -0.5}, {2})}};
  StateDict opt;
  opt.meta = {{"name", "adamw"}, {"step", step}};
  opt.tensors["fc_out.weight.exp_avg"] =
      Tensor::from_doubles({0.1, 0.2, 0.3, 0.4, 0.5, 0.6}, {2, 3});
  save_checkpoint(dir, model, opt, sample_state(step), {{"d_model", 4}});
}

struct TempDir {
  fs::path path;
  explicit TempDir(const char* name) : path(fs::temp_directory_path() / name) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

}  // namespace

TEST_SUITE("train") {
  TEST_CASE("checkpoint: save and load round-trip every field") {
    TempDir tmp("mt_test_ckpt_roundtrip");
    const std::string dir = (tmp.path / "last").string();
    save_sample(dir, 11);
    CHECK(checkpoint_exists(dir));
    CHECK_FALSE(fs::exists(dir + ".tmp"));
    CHECK_FALSE(fs::exists(dir + ".old"));
    const Checkpoint ck = load_checkpoint(dir);
    CHECK(ck.model.at("fc_out.weight").to_vector<float>() == std::vector<float>{1, 2, 3, 4, 5, 6});
    CHECK(ck.model.at("fc_out.bias").shape() == Shape{2});
    CHECK(ck.optimizer.meta["name"] == "adamw");
    CHECK(ck.optimizer.tensors.at("fc_out.weight.exp_avg").to_vector<float>()[5] == 0.6f);
    CHECK(ck.model_config["d_model"] == 4);
    const TrainerState& s = ck.state;
    CHECK(s.step == 11);
    CHECK(s.epoch == 2);
    CHECK(s.batch_in_epoch == 7);
    CHECK(s.rng_offset == 1234567890123ull);
    CHECK(s.best_val_loss == 0.123456789012345);  // exact: JSON doubles round-trip
    CHECK(s.epoch_loss_sum == 1.0 / 3);
    CHECK(s.pending_steps == 2);
    CHECK(s.scheduler["num_bad_epochs"] == 1);
    // An unset best loss (infinity) survives JSON as null.
    TrainerState fresh;
    CHECK(std::isinf(TrainerState::from_json(fresh.to_json()).best_val_loss));
    // Saving again replaces the folder whole.
    save_sample(dir, 12);
    CHECK(load_checkpoint(dir).state.step == 12);
  }

  TEST_CASE("checkpoint: a swap interrupted between its renames leaves a loadable .old") {
    TempDir tmp("mt_test_ckpt_old");
    const std::string dir = (tmp.path / "last").string();
    save_sample(dir, 5);
    fs::rename(dir, dir + ".old");  // the state after the first rename of a swap
    CHECK(checkpoint_exists(dir));
    CHECK(load_checkpoint(dir).state.step == 5);
  }

  TEST_CASE("checkpoint: corrupt, incomplete or mismatched folders are clear errors") {
    TempDir tmp("mt_test_ckpt_corrupt");
    const std::string dir = (tmp.path / "last").string();
    CHECK_THROWS_WITH_TEXT(load_checkpoint(dir), "checkpoint folder '" + dir + "' does not exist");

    save_sample(dir, 5);
    const fs::path model = fs::path(dir) / "model.safetensors";
    const fs::path trainer = fs::path(dir) / "trainer.safetensors";
    const auto size = fs::file_size(model);
    fs::resize_file(model, size - 10);  // truncated
    CHECK_THROWS_WITH_TEXT(load_checkpoint(dir), "model.safetensors is corrupt");

    save_sample(dir, 5);
    fs::remove(trainer);
    CHECK_THROWS_WITH_TEXT(load_checkpoint(dir), "is incomplete: trainer.safetensors is missing");
    CHECK(load_weights(dir).model.size() == 2);  // the weights alone still load

    save_sample(dir, 5);
    { std::ofstream(model, std::ios::binary | std::ios::trunc) << "not a safetensors file"; }
    CHECK_THROWS_WITH_TEXT(load_checkpoint(dir), "model.safetensors is corrupt");

    // Files of two different saves.
    const std::string other = (tmp.path / "other").string();
    save_sample(dir, 5);
    save_sample(other, 6);
    fs::copy_file(fs::path(other) / "trainer.safetensors", trainer,
                  fs::copy_options::overwrite_existing);
    CHECK_THROWS_WITH_TEXT(load_checkpoint(dir), "files from different saves");
  }
}
