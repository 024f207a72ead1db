// The run configuration: one JSON file with five sections. This header is the schema's one
// documented place; models/ parses "model", optim/ parses "optimizer" and "scheduler"
// (optim/factory.h), the trainer (training/) parses "data" and "trainer".
//
// clang-format off
//   {
//     "model": {
//       "n_features":   5,        output features per minute (open, high, low, close, volume)
//       "n_inputs":     0,        input columns per minute (0: the trainer sets the data
//                                 representation's count: 5 for level, 12 for scale_free;
//                                 a model built alone takes n_features)
//       "d_model":      64,       channels C
//       "n_heads":      8,        heads H (head dim D = C / H)
//       "n_layers":     4,        Transformer blocks
//       "d_ff":         256,      MLP hidden width (0 means 4 * d_model)
//       "attn_dropout": 0.05,     dropout on the attention probabilities (training only)
//       "rotary_base":  10000,    RoPE base
//       "rotary_dim":   0,        channels of each head that rotate (0 means the whole head)
//       "norm":         "rmsnorm", the blocks' normalization: "rmsnorm" (weight only) or
//                                 "layernorm" (weight and bias, mean subtracted)
//       "norm_eps":     1e-5,     the normalization's epsilon
//       "qkv_bias":     true,     bias on the fused QKV and the output projection
//       "init":         "pytorch" Linear init: "pytorch" (kaiming-uniform a=sqrt(5) weights,
//                                 uniform(+-1/sqrt(fan_in)) bias) or "xavier" (Xavier-uniform
//                                 weights, zero bias)
//       "target":       "level",  "level": predict the representation's next-minute targets as
//                                 they are (for data.representation "level", the next minute's
//                                 normalized levels: the seed); "delta" (level representation
//                                 only): predict the change from this minute; the output head
//                                 then runs in float32 even under bf16-mixed
//       "deterministic_attention": false
//                                 true: the GPU attention backward sums dQ in a fixed order
//                                 (bit-reproducible runs; ~1.2x slower backward at D = 8);
//                                 false: one pass with atomically added dQ (the CPU is
//                                 deterministic either way)
//     },
//     "data":      { "representation": "scale_free", "window": 2048, "stride": 512, ... }
//                                                                      (training/: trainer's keys)
//     "optimizer": { "name": "adamw", "lr": 5e-5, "weight_decay": 1e-3, ... }  (optim/factory.h)
//     "scheduler": { "name": "plateau", "factor": 0.5, "patience": 2, ... }    (optim/factory.h)
//     "trainer":   { "batch_size": 32, "precision": "bf16-mixed", "clip": 0.5, ... } (training/)
//   }
// clang-format on
//
// A key that is not in the schema is an Error that names it ("model.d_modle: unknown key"), so a
// typo never silently trains the wrong model.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "base/json_keys.h"

namespace mt {

struct ModelConfig {
  int n_features = 5;
  int n_inputs = 0;  // 0: n_features
  int d_model = 64;
  int n_heads = 8;
  int n_layers = 4;
  int d_ff = 256;
  double attn_dropout = 0.05;
  double rotary_base = 10000.0;
  int rotary_dim = 0;            // 0: the whole head
  std::string norm = "rmsnorm";  // "rmsnorm" | "layernorm"
  double norm_eps = 1e-5;
  bool qkv_bias = true;
  std::string init = "pytorch";  // "pytorch" | "xavier"
  std::string target = "level";  // "level" | "delta"
  bool deterministic_attention = false;

  int input_dim() const { return n_inputs > 0 ? n_inputs : n_features; }
  int head_dim() const { return d_model / n_heads; }
  int ff_dim() const { return d_ff > 0 ? d_ff : 4 * d_model; }

  // Reads the "model" section: every key optional (defaults above = the seed's model), unknown
  // keys and inconsistent values (d_model not divisible by n_heads, odd rotary dim, ...) are
  // Errors naming `where` + the key.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& where = "model");
  nlohmann::json to_json() const;
  void validate(const std::string& where = "model") const;
};

// Reads a JSON file (comments are not allowed); an Error names the file and the parse position.
nlohmann::json load_json_file(const std::string& path);

// check_known_keys(j, where, {allowed...}) comes from base/json_keys.h.

}  // namespace mt
