// train: trains the BTC Transformer from a JSON config (see docs/training.md).
//
//   build/bin/train --config models/configs/tiny.json [--set trainer.epochs=3 ...]
//   build/bin/train --resume runs/tiny-20260101-120000 [--set trainer.epochs=20]
//   build/bin/train --help        every config key with its default
//
// Exit codes (training/cli.h): 0 done (a trainer.max_steps stop included), 1 a failure at run
// time (no data, no GPU, non-finite losses), 2 a bad flag or config, 130 stopped by Ctrl-C or
// SIGTERM (after saving the last checkpoint).
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "base/error.h"
#include "cuda/runtime.h"
#include "training/cli.h"
#include "training/config.h"
#include "training/distributed.h"
#include "training/interrupt.h"
#include "training/launch.h"
#include "training/run_config.h"
#include "training/trainer.h"

namespace {

constexpr const char* kUsage =
    "usage: train [--config FILE] [--set key=value]... [--resume RUN_DIR [--switch-data]]\n"
    "             [--help]\n"
    "\n"
    "  --config FILE    JSON config (default: models/configs/btc.json with a GPU,\n"
    "                   models/configs/tiny.json without)\n"
    "  --set key=value  override one key (dotted, e.g. trainer.epochs=3); repeatable\n"
    "  --resume DIR     continue the run in DIR from its last checkpoint (its config.json,\n"
    "                   plus any --set); a finished run with a higher trainer.epochs trains\n"
    "                   on; a folder with no checkpoint yet starts its run over\n"
    "  --switch-data    with --resume: continue on data.dir although it holds other data\n"
    "                   than the run was trained on (refused otherwise)\n"
    "  --help           this text and every config key with its default\n"
    "\n"
    "Ctrl-C stops after the current step and saves the last checkpoint.\n"
    "Exit codes: 0 done, 1 failure, 2 bad flag or config, 130 interrupted.\n";

struct Args {
  std::string config, resume;
  std::vector<std::string> sets;
  bool switch_data = false;
};

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&] { return mt::training::next_flag_value(argc, argv, i); };
    if (arg == "--help" || arg == "-h") {
      std::printf("%s\nconfig keys (default, help):\n%s", kUsage,
                  mt::training::run_schema().help_text().c_str());
      std::exit(0);
    } else if (arg == "--config") {
      a.config = value();
    } else if (arg == "--set") {
      a.sets.push_back(value());
    } else if (arg.rfind("--set=", 0) == 0) {
      a.sets.push_back(arg.substr(6));
    } else if (arg == "--resume") {
      a.resume = value();
    } else if (arg == "--switch-data") {
      a.switch_data = true;
    } else {
      FAIL("unknown argument '{}' (see --help)", arg);
    }
  }
  CHECK(a.config.empty() || a.resume.empty(),
        "--config and --resume exclude each other: a resumed run uses its own config.json");
  CHECK(!a.switch_data || !a.resume.empty(), "--switch-data goes with --resume");
  return a;
}

// trainer.devices > 1: this process becomes the launcher of one process per GPU, each running
// this program with the same arguments (training/launch.h). A new run's folder is named here,
// once, so that the ranks do not each stamp their own.
int launch_ranks(int devices, const Args& args, const nlohmann::json& config,
                 const std::string& config_path, int argc, char** argv) {
  using namespace mt::training;
  CHECK(devices <= mt::cuda::device_count(),
        "trainer.devices = {} but {} GPU(s) are visible (CUDA_VISIBLE_DEVICES?)", devices,
        mt::cuda::device_count());
  std::vector<std::string> extra;
  if (args.resume.empty()) {
    if (config.at("trainer").at("out_dir").get<std::string>().empty()) {
      extra = {"--set", "trainer.out_dir=" +
                            default_run_dir(std::filesystem::path(config_path).stem().string())};
    }
    if (args.config.empty()) extra.insert(extra.end(), {"--config", config_path});
  }
  std::vector<char*> child_argv(argv, argv + argc);
  for (std::string& e : extra) child_argv.push_back(e.data());
  std::printf("[dist] data-parallel over %d GPUs: one process per GPU\n", devices);
  return launch_local_workers(devices, static_cast<int>(child_argv.size()), child_argv.data());
}

// The resolved config, to learn trainer.devices before anything else happens. Every error up to
// here is the command line's or the config's: exit code 2.
nlohmann::json resolve_config(const Args& args, const std::string& path) {
  using namespace mt::training;
  CHECK(args.resume.empty() ||
            std::filesystem::exists(std::filesystem::path(args.resume) / "config.json"),
        "--resume {}: no config.json there (not a run folder?)", args.resume);
  const json config =
      args.resume.empty()
          ? run_schema().resolve(read_json_file(path), args.sets)
          : run_schema().resolve(
                read_json_file((std::filesystem::path(args.resume) / "config.json").string()),
                args.sets);
  (void)TrainerOptions::from_config(config);  // the value checks (ranges, lengths, device)
  return config;
}

int run(int argc, char** argv) {
  using namespace mt::training;
  const Args args = usage_phase([&] { return parse_args(argc, argv); });
  std::string path = args.config;
  if (args.resume.empty() && path.empty()) {
    path = mt::cuda::available() ? "models/configs/btc.json" : "models/configs/tiny.json";
    if (!launched_as_worker()) std::printf("[train] no --config: using %s\n", path.c_str());
  }
  const json config = usage_phase([&] { return resolve_config(args, path); });
  const int devices = config.at("trainer").at("devices").get<int>();
  if (devices > 1 && !launched_as_worker()) {
    return launch_ranks(devices, args, config, path, argc, argv);
  }

  install_interrupt_handler();
  std::unique_ptr<Trainer> trainer;
  if (!args.resume.empty()) {
    trainer = Trainer::resume(args.resume, args.sets, nullptr, nullptr, args.switch_data);
  } else {
    trainer = Trainer::create(config, std::filesystem::path(path).stem().string());
  }
  if (trainer->rank() == 0 && trainer->has_work()) {
    std::printf("%s", trainer->model().summary().c_str());
  }
  const TrainResult result = trainer->fit();
  if (result.stop_reason == "interrupted") return kExitInterrupted;
  return result.stop_reason == "nonfinite" ? kExitFailure : kExitOk;
}

}  // namespace

int main(int argc, char** argv) { return mt::training::run_app("train", run, argc, argv); }
