// train: trains the BTC Transformer from a JSON config (see docs/training.md).
//
//   build/bin/train --config models/configs/tiny.json [--set trainer.epochs=3 ...]
//   build/bin/train --resume runs/tiny-20260101-120000 [--set trainer.epochs=20]
//   build/bin/train --help        every config key with its default
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "base/error.h"
#include "cuda/runtime.h"
#include "training/config.h"
#include "training/distributed.h"
#include "training/interrupt.h"
#include "training/launch.h"
#include "training/run_config.h"
#include "training/trainer.h"

namespace {

constexpr const char* kUsage =
    "usage: train [--config FILE] [--set key=value]... [--resume RUN_DIR] [--help]\n"
    "\n"
    "  --config FILE    JSON config (default: models/configs/btc.json with a GPU,\n"
    "                   models/configs/tiny.json without)\n"
    "  --set key=value  override one key (dotted, e.g. trainer.epochs=3); repeatable\n"
    "  --resume DIR     continue the run in DIR from its last checkpoint (its config.json,\n"
    "                   plus any --set)\n"
    "  --help           this text and every config key with its default\n"
    "\n"
    "Ctrl-C stops after the current step and saves the last checkpoint.\n";

struct Args {
  std::string config, resume;
  std::vector<std::string> sets;
};

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* flag) {
      CHECK(i + 1 < argc, "{} needs a value (see --help)", flag);
      return std::string(argv[++i]);
    };
    if (arg == "--help" || arg == "-h") {
      std::printf("%s\nconfig keys (default, help):\n%s", kUsage,
                  mt::training::run_schema().help_text().c_str());
      std::exit(0);
    } else if (arg == "--config") {
      a.config = value("--config");
    } else if (arg == "--set") {
      a.sets.push_back(value("--set"));
    } else if (arg.rfind("--set=", 0) == 0) {
      a.sets.push_back(arg.substr(6));
    } else if (arg == "--resume") {
      a.resume = value("--resume");
    } else {
      FAIL("unknown argument '{}' (see --help)", arg);
    }
  }
  CHECK(a.config.empty() || a.resume.empty(),
        "--config and --resume exclude each other: a resumed run uses its own config.json");
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

int run(int argc, char** argv) {
  using namespace mt::training;
  const Args args = parse_args(argc, argv);
  std::string path = args.config;
  if (args.resume.empty() && path.empty()) {
    path = mt::cuda::available() ? "models/configs/btc.json" : "models/configs/tiny.json";
    if (!launched_as_worker()) std::printf("[train] no --config: using %s\n", path.c_str());
  }
  // The resolved config, to learn trainer.devices before anything else happens.
  CHECK(args.resume.empty() ||
            std::filesystem::exists(std::filesystem::path(args.resume) / "config.json"),
        "--resume {}: no config.json there (not a run folder?)", args.resume);
  const json config =
      args.resume.empty()
          ? run_schema().resolve(read_json_file(path), args.sets)
          : run_schema().resolve(
                read_json_file((std::filesystem::path(args.resume) / "config.json").string()),
                args.sets);
  const int devices = config.at("trainer").at("devices").get<int>();
  if (devices > 1 && !launched_as_worker()) {
    return launch_ranks(devices, args, config, path, argc, argv);
  }

  install_interrupt_handler();
  std::unique_ptr<Trainer> trainer;
  if (!args.resume.empty()) {
    trainer = Trainer::resume(args.resume, args.sets);
  } else {
    trainer = Trainer::create(config, std::filesystem::path(path).stem().string());
  }
  if (trainer->rank() == 0) std::printf("%s", trainer->model().summary().c_str());
  const TrainResult result = trainer->fit();
  return result.stop_reason == "nonfinite" ? 3 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const mt::Error& e) {
    std::fprintf(stderr, "train: error: %s\n", e.message().c_str());
    return 2;
  }
}
