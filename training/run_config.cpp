#include "training/run_config.h"

#include "base/error.h"
#include "models/config.h"
#include "tensor/dtype.h"

namespace mt::training {

namespace {

void add_model(ConfigSchema& s) {
  const ModelConfig d;  // the seed's model
  s.add("model.n_features", d.n_features, "output features per minute");
  s.add("model.n_inputs", d.n_inputs,
        "input columns per minute (0: the data representation's, 5 for level, 12 for scale_free)");
  s.add("model.d_model", d.d_model, "channels C");
  s.add("model.n_heads", d.n_heads, "attention heads H (head dim D = C / H)");
  s.add("model.n_layers", d.n_layers, "Transformer blocks");
  s.add("model.d_ff", d.d_ff, "MLP hidden width (0: 4 * d_model)");
  s.add("model.attn_dropout", d.attn_dropout, "dropout on attention probabilities (training)");
  s.add("model.rotary_base", d.rotary_base, "rotary embedding base");
  s.add("model.rotary_dim", d.rotary_dim, "rotating channels per head (0: the whole head)");
  s.add("model.norm", d.norm, "the blocks' normalization", {"rmsnorm", "layernorm"});
  s.add("model.norm_eps", d.norm_eps, "normalization epsilon");
  s.add("model.qkv_bias", d.qkv_bias, "bias on the QKV and output projections");
  s.add("model.init", d.init, "Linear init", {"pytorch", "xavier"});
  s.add("model.target", d.target,
        "forecast target: the representation's next-minute targets, or (level representation "
        "only) the change from this minute (fp32 head and loss)",
        {"level", "delta"});
}

void add_optim(ConfigSchema& s) {
  const json none;  // null: the optimizer's or scheduler's own default
  s.add("optimizer.name", "adamw", "optimizer", {"adamw", "adam", "sgd"});
  s.add("optimizer.lr", 1e-3, "learning rate");
  s.add("optimizer.weight_decay", none, "default 0.01 for adamw, 0 for adam and sgd");
  s.add("optimizer.betas", none, "adam/adamw, default [0.9, 0.999]");
  s.add("optimizer.eps", none, "adam/adamw, default 1e-8");
  s.add("optimizer.momentum", none, "sgd, default 0");
  s.add("optimizer.dampening", none, "sgd, default 0");
  s.add("optimizer.nesterov", none, "sgd, default false");
  s.add("optimizer.no_decay_norm_bias", none, "true: no weight decay on biases and norms");
  s.add("scheduler.name", "none", "lr schedule", {"none", "plateau", "cosine", "step"});
  s.add("scheduler.factor", none, "plateau: lr *= factor (default 0.1)");
  s.add("scheduler.patience", none, "plateau: bad epochs before a cut (default 10)");
  s.add("scheduler.threshold", none, "plateau: relative improvement (default 1e-4)");
  s.add("scheduler.cooldown", none, "plateau: epochs after a cut (default 0)");
  s.add("scheduler.min_lr", none, "plateau/cosine: lowest lr (default 0)");
  s.add("scheduler.warmup_steps", none, "cosine: linear warmup steps (default 0)");
  s.add("scheduler.total_steps", none, "cosine: default epochs * steps per epoch");
  s.add("scheduler.step_size", none, "step: epochs between cuts (default 10)");
  s.add("scheduler.gamma", none, "step: lr *= gamma (default 0.1)");
}

void add_trainer(ConfigSchema& s) {
  s.add("data.dir", "data_prepared", "prepared dataset folder (`make data`)");
  s.add("data.representation", "scale_free",
        "what the model sees and predicts (data/representation.h): ratios to the current "
        "close, or the seed's z-scored log levels",
        {"scale_free", "level"});
  s.add("data.window", 2048, "minutes per window T");
  s.add("data.stride", 512, "minutes between window starts");
  s.add("trainer.epochs", 10, "epochs");
  s.add("trainer.max_steps", 0, "stop after this many optimizer steps (0: no limit)");
  s.add("trainer.batch_size", 32, "windows per micro-batch B");
  s.add("trainer.accumulation", 1, "micro-batches per optimizer step");
  s.add("trainer.clip", 0.5, "global gradient-norm clip (0: off)");
  s.add("trainer.precision", "bf16-mixed", "numerics", {"fp32", "bf16-mixed"});
  s.add("trainer.seed", 42, "seed of init, dropout and shuffling");
  s.add("trainer.device", "auto", "cpu, cuda, cuda:N or auto (CUDA when a GPU is present)");
  s.add("trainer.out_dir", "", "run folder (empty: runs/<config name>-<UTC time>)");
  s.add("trainer.progress", "auto", "auto: a bar on a terminal", {"auto", "bar", "plain", "none"});
  s.add("trainer.log_every", 10, "optimizer steps between loss read-backs and log lines");
  s.add("trainer.checkpoint_every", 0, "steps between 'last' checkpoints (0: each epoch end)");
  s.add("trainer.skip_nonfinite", true,
        "skip a step whose grad norm is NaN/Inf (decided on the device, read at log time)");
  s.add("trainer.max_nonfinite", 20, "skipped steps in a row that stop the run");
  s.add("trainer.val_batches", 0, "validation batches per epoch (0: the whole split)");
  s.add("trainer.early_stopping_patience", 0, "epochs without improvement that stop (0: off)");
  s.add("trainer.early_stopping_min_delta", 0.0, "improvement needed to reset patience");
  s.add("trainer.loss", "smooth_l1",
        "smooth_l1: the seed's weighted Huber loss; mse: the mean squared error over all targets "
        "(the metric evaluation reports; no per-feature weights)",
        {"smooth_l1", "mse"});
  s.add("trainer.loss_beta", 0.01, "smooth-L1 beta (the seed's 0.01)");
  s.add("trainer.loss_weights", json::array({1.0, 1.0, 1.0, 1.0, 0.25}),
        "per-feature loss weights (open, high, low, close, volume)");
  s.add("trainer.blend", true,
        "at the end, fit per target the weight w of forecast = naive rule + w (network - rule) "
        "on the validation split (training/evaluate.h)");
  s.add("trainer.evaluate", true, "evaluate the best checkpoint on the test split at the end");
  s.add("trainer.eval_windows", 0, "test windows to evaluate (0: all)");
  s.add("trainer.plots", true, "draw the plots at the end (gnuplot)");
  s.add("trainer.threads", 0, "CPU threads (0: OpenMP's default)");
  s.add("trainer.devices", 1,
        "GPUs of this host, one process each, data-parallel over NCCL (docs/distributed.md)");
  s.add("trainer.dp_bucket_kb", 256, "data-parallel: gradient all-reduce bucket size (KiB)");
  s.add("trainer.dp_check_every", 100,
        "data-parallel: steps between identical-weights checks (0: only at the end)");
  s.add("trainer.cuda_graph", true,
        "on a GPU (one process, profile_steps 0): capture the whole optimizer step once as a "
        "CUDA graph and replay it (training/step_graph.h); false: launch every kernel each step");
  s.add("trainer.profile_steps", 0,
        "time this many steps per NVTX range after a warm-up step, print the table "
        "(docs/profiling.md; 0: off)");
}

}  // namespace

const ConfigSchema& run_schema() {
  static const ConfigSchema schema = [] {
    ConfigSchema s;
    add_model(s);
    add_optim(s);
    add_trainer(s);
    return s;
  }();
  return schema;
}

TrainerOptions TrainerOptions::from_config(const json& c) {
  TrainerOptions o;
  // Named keys first: g++ 13 warns (-Wdangling-reference) when a reference is bound to a call
  // that takes a temporary std::string, although at_path returns a part of c.
  const std::string data_key = "data", trainer_key = "trainer";
  const json& d = at_path(c, data_key);
  const json& t = at_path(c, trainer_key);
  o.data_dir = d.at("dir").get<std::string>();
  o.representation = d.at("representation").get<std::string>();
  o.window = d.at("window").get<int64_t>();
  o.stride = d.at("stride").get<int64_t>();
  o.epochs = t.at("epochs").get<int>();
  o.max_steps = t.at("max_steps").get<int64_t>();
  o.batch_size = t.at("batch_size").get<int64_t>();
  o.accumulation = t.at("accumulation").get<int>();
  o.clip = t.at("clip").get<double>();
  o.precision = t.at("precision").get<std::string>();
  o.seed = t.at("seed").get<uint64_t>();
  o.device = t.at("device").get<std::string>();
  o.out_dir = t.at("out_dir").get<std::string>();
  o.progress = t.at("progress").get<std::string>();
  o.log_every = t.at("log_every").get<int64_t>();
  o.checkpoint_every = t.at("checkpoint_every").get<int64_t>();
  o.skip_nonfinite = t.at("skip_nonfinite").get<bool>();
  o.max_nonfinite = t.at("max_nonfinite").get<int64_t>();
  o.val_batches = t.at("val_batches").get<int64_t>();
  o.early_stopping_patience = t.at("early_stopping_patience").get<int>();
  o.early_stopping_min_delta = t.at("early_stopping_min_delta").get<double>();
  o.loss = t.at("loss").get<std::string>();
  o.loss_beta = t.at("loss_beta").get<double>();
  o.loss_weights = t.at("loss_weights").get<std::vector<double>>();
  o.evaluate = t.at("evaluate").get<bool>();
  o.blend = t.at("blend").get<bool>();
  o.eval_windows = t.at("eval_windows").get<int64_t>();
  o.plots = t.at("plots").get<bool>();
  o.threads = t.at("threads").get<int>();
  o.devices = t.at("devices").get<int>();
  o.dp_bucket_kb = t.at("dp_bucket_kb").get<int64_t>();
  o.dp_check_every = t.at("dp_check_every").get<int64_t>();
  o.profile_steps = t.at("profile_steps").get<int64_t>();
  o.cuda_graph = t.at("cuda_graph").get<bool>();
  CHECK(o.epochs >= 1, "trainer.epochs must be >= 1, got {}", o.epochs);
  CHECK(o.max_steps >= 0, "trainer.max_steps must be >= 0, got {}", o.max_steps);
  CHECK(o.batch_size >= 1, "trainer.batch_size must be >= 1, got {}", o.batch_size);
  CHECK(o.accumulation >= 1, "trainer.accumulation must be >= 1, got {}", o.accumulation);
  CHECK(o.clip >= 0, "trainer.clip must be >= 0 (0: off), got {}", o.clip);
  CHECK(o.log_every >= 1, "trainer.log_every must be >= 1, got {}", o.log_every);
  CHECK(o.max_nonfinite >= 1, "trainer.max_nonfinite must be >= 1, got {}", o.max_nonfinite);
  CHECK(o.window >= 2 && o.stride >= 1,
        "data.window must be >= 2 and data.stride >= 1, got {} "
        "and {}",
        o.window, o.stride);
  CHECK(o.devices >= 1, "trainer.devices must be >= 1, got {}", o.devices);
  (void)Device::parse(o.device);  // its spelling; whether that device is there is checked later
  CHECK(o.dp_bucket_kb >= 1, "trainer.dp_bucket_kb must be >= 1, got {}", o.dp_bucket_kb);
  CHECK(o.dp_check_every >= 0, "trainer.dp_check_every must be >= 0, got {}", o.dp_check_every);
  CHECK(o.profile_steps >= 0, "trainer.profile_steps must be >= 0 (0: off), got {}",
        o.profile_steps);
  CHECK(o.loss_beta >= 0, "trainer.loss_beta must be >= 0, got {}", o.loss_beta);
  const int64_t features = at_path(c, "model.n_features").get<int64_t>();
  CHECK(static_cast<int64_t>(o.loss_weights.size()) == features,
        "trainer.loss_weights has {} values, model.n_features is {}", o.loss_weights.size(),
        features);
  if (o.loss == "mse") {
    for (double w : o.loss_weights) {
      CHECK(w == 1.0,
            "trainer.loss_weights must all be 1 with trainer.loss \"mse\" (it weighs every "
            "target alike), got [{}]",
            fmt::join(o.loss_weights, ", "));
    }
  }
  return o;
}

json section_without_nulls(const json& config, const std::string& section) {
  json out = json::object();
  for (auto it = config.at(section).begin(); it != config.at(section).end(); ++it) {
    if (!it.value().is_null()) out[it.key()] = it.value();
  }
  return out;
}

}  // namespace mt::training
