// The apps as a user runs them: prepare, train, evaluate and forecast started as processes in a
// scratch folder, their exit codes (training/cli.h), their messages and the files they leave. The
// apps are found beside this test binary (`make test` builds them first); a missing one skips the
// case with a message.
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/test_util.h"
#include "tests/train_fixtures.h"
#include "training/config.h"
#include "training/files.h"

using namespace mt;
using namespace mt::testing;

namespace {

std::string app(const char* name) {
  const fs::path p = fs::read_symlink("/proc/self/exe").parent_path() / name;
  return fs::exists(p) ? p.string() : "";
}

bool have_apps() {
  for (const char* name : {"prepare", "train", "evaluate", "forecast"}) {
    if (app(name).empty()) {
      MESSAGE("build/bin/" << name << " is not built: command-line case skipped");
      return false;
    }
  }
  return true;
}

struct Ran {
  int code = -1;
  std::string out;  // stdout and stderr together
};

// Runs a shell command with one OpenMP thread (the tiny model gains nothing from more), its
// output captured in `log`.
Ran sh(const std::string& cmd, const std::string& log) {
  const std::string full = "(export OMP_NUM_THREADS=1; " + cmd + ") >'" + log + "' 2>&1";
  const int status = std::system(full.c_str());
  Ran r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::ifstream in(log);
  r.out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return r;
}

bool has(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// The tiny model of the trainer tests, as a config file, on windows of 32 every 16.
std::string write_tiny_config(const TempDir& tmp) {
  const std::string path = tmp.sub("tiny.json");
  training::write_json_file(path, json::parse(R"({
    "model": {"d_model": 16, "n_heads": 2, "n_layers": 1, "d_ff": 32},
    "data": {"window": 32, "stride": 16},
    "optimizer": {"lr": 0.003},
    "trainer": {"epochs": 2, "batch_size": 4, "precision": "fp32", "device": "cpu",
                "log_every": 1, "progress": "plain", "evaluate": false, "plots": false}
  })"));
  return path;
}

// 1,500 synthetic minutes prepared with those windows: 18 steps of 4 windows an epoch.
std::string prepare_small(const TempDir& tmp, const std::string& name) {
  const std::string dir = tmp.sub(name);
  const Ran r =
      sh(app("prepare") + " --synthetic --synthetic-minutes 1500 --window 32 --stride 16" +
             " --out " + dir,
         tmp.sub(name + ".log"));
  INFO(r.out);
  REQUIRE(r.code == 0);
  return dir;
}

}  // namespace

TEST_SUITE("cli") {
  TEST_CASE(
      "cli: exit codes 2 for usage, 1 for failures, one error line without a doubled prefix") {
    if (!have_apps()) return;
    TempDir tmp("mt_test_cli_codes");
    fs::create_directories(tmp.path);
    const std::string config = write_tiny_config(tmp), log = tmp.sub("log");
    const std::string train = app("train") + " --config " + config;

    Ran r = sh(app("evaluate") + " --run " + tmp.sub("x") + " --max-windows abc", log);
    CHECK(r.code == 2);
    CHECK(has(r.out, "evaluate: error: --max-windows: expected an integer, got 'abc'"));
    CHECK_FALSE(has(r.out, "stoll"));
    CHECK(count_of(r.out, "error:") == 1);

    r = sh(train + " --set trainer.epoch=3", log);
    CHECK(r.code == 2);
    CHECK(has(r.out, "did you mean 'trainer.epochs'"));
    r = sh(train + " --set trainer.device=gpu", log);
    CHECK(r.code == 2);
    r = sh(app("train") + " --config", log);  // a flag with no value
    CHECK(r.code == 2);
    CHECK(has(r.out, "train: error: --config needs a value"));
    r = sh(app("forecast") + " --csv " + tmp.sub("x.csv") + " --run", log);
    CHECK(r.code == 2);
    CHECK(has(r.out, "forecast: error: --run needs a value"));
    CHECK(count_of(r.out, "error:") == 1);
    r = sh(app("prepare") + " --synthetic --out " + tmp.sub("d") + " --window x", log);
    CHECK(r.code == 2);
    CHECK(has(r.out, "prepare: error: --window: expected an integer, got 'x'"));

    // Failures at run time: 1, and a start that fails leaves no run folder.
    r = sh(
        train + " --set data.dir=" + tmp.sub("none") + " --set trainer.out_dir=" + tmp.sub("run"),
        log);
    CHECK(r.code == 1);
    CHECK(has(r.out, "no prepared dataset"));
    CHECK_FALSE(fs::exists(tmp.sub("run")));
    r = sh(app("prepare") + " --csv " + tmp.sub("missing.csv") + " --out " + tmp.sub("d"), log);
    CHECK(r.code == 1);
    training::write_file_atomic(tmp.sub("bad.csv"),
                                "Timestamp,Open,High,Low,Close,Volume\n"
                                "1672531200,1,1,1,1,1\n1672531260,1,x,1,1,1\n");
    r = sh(app("prepare") + " --csv " + tmp.sub("bad.csv") + " --out " + tmp.sub("d"), log);
    CHECK(r.code == 1);
    CHECK(has(r.out, "bad.csv:3:"));
    CHECK(has(r.out, "--on-bad-row skip"));
    // A run folder whose run stopped before its first checkpoint.
    fs::create_directories(tmp.sub("early"));
    fs::copy_file(config, tmp.sub("early/config.json"));
    r = sh(app("evaluate") + " --run " + tmp.sub("early"), log);
    CHECK(r.code == 1);
    CHECK(has(r.out, "holds no checkpoint"));
    CHECK(count_of(r.out, "evaluate:") == 1);
    r = sh(app("forecast") + " --run " + tmp.sub("early") + " --csv " + tmp.sub("bad.csv"), log);
    CHECK(r.code == 1);
    CHECK(has(r.out, "holds no checkpoint"));
    CHECK(count_of(r.out, "forecast:") == 1);
  }

  TEST_CASE("cli: a max_steps stop exits 0 with test metrics; SIGTERM exits 130 after saving") {
    if (!have_apps()) return;
    TempDir tmp("mt_test_cli_train");
    fs::create_directories(tmp.path);
    const std::string config = write_tiny_config(tmp), data = prepare_small(tmp, "data");
    const std::string train = app("train") + " --config " + config + " --set data.dir=" + data;

    const std::string run = tmp.sub("runs/stopped");
    Ran r = sh(train + " --set trainer.max_steps=25 --set trainer.evaluate=true" +
                   " --set trainer.out_dir=" + run,
               tmp.sub("stopped.log"));
    INFO(r.out);
    CHECK(r.code == 0);
    CHECK(has(r.out, "epoch 2/2 max_steps 25/25"));  // progress toward the limit, not the epoch
    CHECK(has(r.out, "stopped at trainer.max_steps = 25"));
    CHECK(fs::exists(run + "/checkpoints/best"));
    CHECK(fs::exists(run + "/metrics.md"));

    // Started in the background, terminated once its first step is logged (the handler is in).
    const std::string terminated = tmp.sub("runs/terminated");
    r = sh(train + " --set trainer.epochs=1000 --set trainer.max_steps=20000 --set " +
               "trainer.out_dir=" + terminated + " & pid=$!; i=0; " + "while [ ! -s " + terminated +
               "/metrics.jsonl ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; " +
               "kill -TERM $pid; wait $pid",
           tmp.sub("terminated.log"));
    INFO(r.out);
    CHECK(r.code == 130);
    CHECK(has(r.out, "interrupted at step"));
    CHECK(checkpoint_exists(terminated + "/checkpoints/last"));

    // evaluate --latest-run passes over a newer folder without a checkpoint.
    fs::create_directories(tmp.sub("runs/early"));
    fs::copy_file(config, tmp.sub("runs/early/config.json"));
    r = sh(app("evaluate") + " --latest-run " + tmp.sub("runs") + " --no-plots",
           tmp.sub("latest.log"));
    CHECK(r.code == 0);
    CHECK(has(r.out, "the newest run with a checkpoint: " + terminated));
    fs::remove_all(run);
    fs::remove_all(terminated);
    r = sh(app("evaluate") + " --latest-run " + tmp.sub("runs"), tmp.sub("latest.log"));
    CHECK(r.code == 1);
    CHECK(
        has(r.out, "no run folder there has a checkpoint; without one: " + tmp.sub("runs/early")));
    // A resume of that folder starts its run over.
    r = sh(app("train") + " --resume " + tmp.sub("runs/early") + " --set data.dir=" + data +
               " --set trainer.epochs=1",
           tmp.sub("early.log"));
    CHECK(r.code == 0);
    CHECK(has(r.out, "starting that run over"));
    CHECK(checkpoint_exists(tmp.sub("runs/early/checkpoints/last")));
  }

  TEST_CASE(
      "cli: prepare --reuse keeps a folder made from the same file; real data replaces synthetic") {
    if (!have_apps()) return;
    TempDir tmp("mt_test_cli_prepare");
    fs::create_directories(tmp.path);
    const std::string dir = prepare_small(tmp, "data");
    const std::string synthetic_csv = dir + "/synthetic_btcusd_1-min.csv";
    REQUIRE(fs::exists(synthetic_csv));
    // The "real" file: the synthetic market under another name (any Kaggle-layout CSV does).
    fs::copy_file(synthetic_csv, tmp.sub("market.csv"));
    const std::string prepare = app("prepare") + " --csv " + tmp.sub("market.csv") + " --out " +
                                dir + " --window 32 --stride 16 --reuse";
    Ran r = sh(prepare, tmp.sub("log"));
    INFO(r.out);
    CHECK(r.code == 0);
    CHECK(has(r.out, "replacing the dataset in " + dir + " (SYNTHETIC"));
    CHECK(has(r.out, "removed " + synthetic_csv));
    CHECK_FALSE(fs::exists(synthetic_csv));
    CHECK(training::read_json_file(dir + "/manifest.json")["synthetic"] == false);
    const std::string manifest = training::read_file(dir + "/manifest.json");

    r = sh(prepare, tmp.sub("log"));
    CHECK(r.code == 0);
    CHECK(has(r.out, "already holds " + tmp.sub("market.csv")));
    CHECK(training::read_file(dir + "/manifest.json") == manifest);

    r = sh(prepare + " --stride 8", tmp.sub("log"));  // other options: prepared again
    CHECK(r.code == 0);
    CHECK(has(r.out, "replacing the dataset"));
    CHECK(training::read_json_file(dir + "/manifest.json")["stride"] == 8);
  }
}
