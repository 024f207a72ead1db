#include "training/checkpoint.h"

#include <cmath>
#include <filesystem>

#include "base/error.h"
#include "tensor/safetensors.h"

namespace mt::training {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kModelFile = "model.safetensors";
constexpr const char* kTrainerFile = "trainer.safetensors";

// JSON has no infinity: an unset best loss is written as null.
json finite_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

template <typename T>
T get_key(const json& j, const char* key) {
  CHECK(j.contains(key), "trainer state: missing key '{}'", key);
  try {
    return j.at(key).get<T>();
  } catch (const json::exception& e) {
    FAIL("trainer state: key '{}' has the wrong type ({})", key, j.at(key).dump());
  }
}

// The folder to read: <dir>, or <dir>.old when a swap was interrupted between its two renames.
std::string resolve_dir(const std::string& dir) {
  if (fs::exists(fs::path(dir) / kModelFile)) return dir;
  if (fs::exists(fs::path(dir + ".old") / kModelFile)) return dir + ".old";
  return dir;
}

SafetensorsFile load_part(const std::string& dir, const char* file) {
  const fs::path path = fs::path(dir) / file;
  CHECK(fs::exists(path), "checkpoint '{}' is incomplete: {} is missing", dir, file);
  try {
    return load_safetensors(path.string());
  } catch (const Error& e) {
    FAIL("checkpoint '{}': {} is corrupt: {}", dir, file, e.message());
  }
}

void check_format(const std::string& dir, const char* file, const SafetensorsFile& f) {
  const auto it = f.metadata.find("format");
  CHECK(it != f.metadata.end(),
        "checkpoint '{}': {} has no 'format' metadata (not written by "
        "the trainer?)",
        dir, file);
  CHECK(it->second == std::to_string(kCheckpointFormat),
        "checkpoint '{}': {} has format version {}, this build reads version {}", dir, file,
        it->second, kCheckpointFormat);
}

json parse_meta(const std::string& dir, const char* file, const SafetensorsFile& f,
                const char* key) {
  const auto it = f.metadata.find(key);
  CHECK(it != f.metadata.end(), "checkpoint '{}': {} has no '{}' metadata", dir, file, key);
  json j = json::parse(it->second, nullptr, /*allow_exceptions=*/false);
  CHECK(!j.is_discarded(), "checkpoint '{}': {} metadata '{}' is not valid JSON", dir, file, key);
  return j;
}

}  // namespace

json TrainerState::to_json() const {
  return json{{"epoch", epoch},
              {"batch_in_epoch", batch_in_epoch},
              {"samples_in_epoch", samples_in_epoch},
              {"world", world},
              {"step", step},
              {"rng_seed", rng_seed},
              {"rng_offset", rng_offset},
              {"best_val_loss", finite_or_null(best_val_loss)},
              {"best_epoch", best_epoch},
              {"nonfinite_total", nonfinite_total},
              {"nonfinite_in_a_row", nonfinite_in_a_row},
              {"epoch_loss_sum", epoch_loss_sum},
              {"epoch_loss_count", epoch_loss_count},
              {"pending_loss_sum", pending_loss_sum},
              {"pending_steps", pending_steps},
              {"pending_applied", pending_applied},
              {"elapsed_s", elapsed_s},
              {"finished", finished},
              {"scheduler", scheduler},
              {"early_stopping", early_stopping}};
}

TrainerState TrainerState::from_json(const json& j) {
  CHECK(j.is_object(), "trainer state: expected a JSON object, got {}", j.dump());
  TrainerState s;
  s.epoch = get_key<int>(j, "epoch");
  s.batch_in_epoch = get_key<int64_t>(j, "batch_in_epoch");
  // Absent from checkpoints written before data-parallel training: one rank.
  s.world = j.value("world", 1);
  s.samples_in_epoch = j.value("samples_in_epoch", int64_t{-1});
  s.step = get_key<int64_t>(j, "step");
  s.rng_seed = get_key<uint64_t>(j, "rng_seed");
  s.rng_offset = get_key<uint64_t>(j, "rng_offset");
  const json& best = j.contains("best_val_loss") ? j.at("best_val_loss") : json(nullptr);
  s.best_val_loss = best.is_null() ? std::numeric_limits<double>::infinity() : best.get<double>();
  s.best_epoch = get_key<int>(j, "best_epoch");
  s.nonfinite_total = get_key<int64_t>(j, "nonfinite_total");
  s.nonfinite_in_a_row = get_key<int64_t>(j, "nonfinite_in_a_row");
  s.epoch_loss_sum = get_key<double>(j, "epoch_loss_sum");
  s.epoch_loss_count = get_key<int64_t>(j, "epoch_loss_count");
  s.pending_loss_sum = get_key<double>(j, "pending_loss_sum");
  s.pending_steps = get_key<int64_t>(j, "pending_steps");
  // Checkpoints from before the device-side skip: skipped steps never entered the pending sum.
  s.pending_applied = j.value("pending_applied", s.pending_steps);
  s.elapsed_s = get_key<double>(j, "elapsed_s");
  s.finished = get_key<bool>(j, "finished");
  s.scheduler = get_key<json>(j, "scheduler");
  s.early_stopping = get_key<json>(j, "early_stopping");
  return s;
}

void save_checkpoint(const std::string& dir, const std::map<std::string, Tensor>& model,
                     const StateDict& optimizer, const TrainerState& state,
                     const json& model_config) {
  const std::string tmp = dir + ".tmp", old = dir + ".old";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  CHECK(!ec, "cannot create checkpoint folder '{}': {}", tmp, ec.message());

  const std::string format = std::to_string(kCheckpointFormat);
  const std::string step = std::to_string(state.step);
  save_safetensors((fs::path(tmp) / kModelFile).string(), model,
                   {{"format", format}, {"step", step}, {"model_config", model_config.dump()}});
  save_safetensors((fs::path(tmp) / kTrainerFile).string(), optimizer.tensors,
                   {{"format", format},
                    {"step", step},
                    {"optimizer", optimizer.meta.dump()},
                    {"trainer_state", state.to_json().dump()}});

  fs::remove_all(old, ec);
  if (fs::exists(dir)) {
    fs::rename(dir, old, ec);
    CHECK(!ec, "cannot move '{}' aside to '{}': {}", dir, old, ec.message());
  }
  fs::rename(tmp, dir, ec);
  CHECK(!ec, "cannot rename '{}' to '{}': {}", tmp, dir, ec.message());
  fs::remove_all(old, ec);
}

Checkpoint load_weights(const std::string& requested) {
  const std::string dir = resolve_dir(requested);
  CHECK(fs::is_directory(dir), "checkpoint folder '{}' does not exist", requested);
  SafetensorsFile model = load_part(dir, kModelFile);
  check_format(dir, kModelFile, model);
  Checkpoint ck;
  ck.model = std::move(model.tensors);
  ck.model_config = parse_meta(dir, kModelFile, model, "model_config");
  const json step = parse_meta(dir, kModelFile, model, "step");
  CHECK(step.is_number_integer(), "checkpoint '{}': {} metadata 'step' is not an integer: {}", dir,
        kModelFile, step.dump());
  ck.state.step = step.get<int64_t>();
  return ck;
}

Checkpoint load_checkpoint(const std::string& requested) {
  Checkpoint ck = load_weights(requested);
  const std::string dir = resolve_dir(requested);
  SafetensorsFile trainer = load_part(dir, kTrainerFile);
  check_format(dir, kTrainerFile, trainer);
  const int64_t model_step = ck.state.step;
  try {
    ck.state = TrainerState::from_json(parse_meta(dir, kTrainerFile, trainer, "trainer_state"));
  } catch (const Error& e) {
    FAIL("checkpoint '{}': {}: {}", dir, kTrainerFile, e.message());
  }
  CHECK(ck.state.step == model_step,
        "checkpoint '{}': {} is from step {} but {} from step {} (files from different saves)", dir,
        kModelFile, model_step, kTrainerFile, ck.state.step);
  ck.optimizer.meta = parse_meta(dir, kTrainerFile, trainer, "optimizer");
  ck.optimizer.tensors = std::move(trainer.tensors);
  return ck;
}

bool checkpoint_exists(const std::string& dir) {
  return fs::exists(fs::path(dir) / kModelFile) || fs::exists(fs::path(dir + ".old") / kModelFile);
}

}  // namespace mt::training
