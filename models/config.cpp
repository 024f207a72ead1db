#include "models/config.h"

#include <fstream>
#include <sstream>

#include "base/error.h"

namespace mt {

using nlohmann::json;

json load_json_file(const std::string& path) {
  std::ifstream in(path);
  CHECK(in.good(), "cannot open config file '{}'", path);
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::parse_error& e) {
    FAIL("{}: invalid JSON: {}", path, e.what());
  }
}

namespace {

// Reads j[key] into `out` when present, with an Error naming the key on a type mismatch.
template <typename T>
void read(const json& j, const std::string& where, const char* key, T& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;  // null: "use the default"
  try {
    out = it->get<T>();
  } catch (const json::exception&) {
    FAIL("{}.{}: expected a {}, got {} ({})", where, key,
         std::is_same<T, std::string>::value ? "string"
         : std::is_same<T, bool>::value      ? "boolean"
                                             : "number",
         it->type_name(), it->dump());
  }
}

}  // namespace

ModelConfig ModelConfig::from_json(const json& j, const std::string& where) {
  check_known_keys(j, where,
                   {"n_features", "n_inputs", "d_model", "n_heads", "n_layers", "d_ff",
                    "attn_dropout", "rotary_base", "rotary_dim", "norm", "norm_eps", "qkv_bias",
                    "init", "target", "deterministic_attention"});
  ModelConfig c;
  read(j, where, "n_features", c.n_features);
  read(j, where, "n_inputs", c.n_inputs);
  read(j, where, "d_model", c.d_model);
  read(j, where, "n_heads", c.n_heads);
  read(j, where, "n_layers", c.n_layers);
  read(j, where, "d_ff", c.d_ff);
  read(j, where, "attn_dropout", c.attn_dropout);
  read(j, where, "rotary_base", c.rotary_base);
  read(j, where, "rotary_dim", c.rotary_dim);
  read(j, where, "norm", c.norm);
  read(j, where, "norm_eps", c.norm_eps);
  read(j, where, "qkv_bias", c.qkv_bias);
  read(j, where, "init", c.init);
  read(j, where, "target", c.target);
  read(j, where, "deterministic_attention", c.deterministic_attention);
  c.validate(where);
  return c;
}

void ModelConfig::validate(const std::string& where) const {
  CHECK(n_features > 0, "{}.n_features: must be positive, got {}", where, n_features);
  CHECK(n_inputs >= 0, "{}.n_inputs: must be >= 0 (0 means n_features), got {}", where, n_inputs);
  CHECK(d_model > 0, "{}.d_model: must be positive, got {}", where, d_model);
  CHECK(n_heads > 0 && d_model % n_heads == 0, "{}.n_heads: must divide d_model = {}, got {}",
        where, d_model, n_heads);
  CHECK(n_layers >= 0, "{}.n_layers: must be >= 0, got {}", where, n_layers);
  CHECK(d_ff >= 0, "{}.d_ff: must be >= 0 (0 means 4 * d_model), got {}", where, d_ff);
  CHECK(attn_dropout >= 0.0 && attn_dropout < 1.0, "{}.attn_dropout: must be in [0, 1), got {}",
        where, attn_dropout);
  CHECK(rotary_base > 1.0, "{}.rotary_base: must be > 1, got {}", where, rotary_base);
  CHECK(rotary_dim >= 0 && rotary_dim <= head_dim() && rotary_dim % 2 == 0,
        "{}.rotary_dim: must be even and in [0, head dim = {}] (0 = whole head), got {}", where,
        head_dim(), rotary_dim);
  CHECK(head_dim() % 2 == 0 || rotary_dim > 0,
        "{}: rotary over the whole head needs an even head dim, got {}", where, head_dim());
  CHECK(norm == "rmsnorm" || norm == "layernorm",
        "{}.norm: expected \"rmsnorm\" or \"layernorm\", got \"{}\"", where, norm);
  CHECK(norm_eps > 0.0, "{}.norm_eps: must be positive, got {}", where, norm_eps);
  CHECK(init == "pytorch" || init == "xavier",
        "{}.init: expected \"pytorch\" or \"xavier\", got \"{}\"", where, init);
  CHECK(target == "level" || target == "delta",
        "{}.target: expected \"level\" or \"delta\", got \"{}\"", where, target);
}

json ModelConfig::to_json() const {
  return json{{"n_features", n_features},
              {"n_inputs", n_inputs},
              {"d_model", d_model},
              {"n_heads", n_heads},
              {"n_layers", n_layers},
              {"d_ff", d_ff},
              {"attn_dropout", attn_dropout},
              {"rotary_base", rotary_base},
              {"rotary_dim", rotary_dim},
              {"norm", norm},
              {"norm_eps", norm_eps},
              {"qkv_bias", qkv_bias},
              {"init", init},
              {"target", target},
              {"deterministic_attention", deterministic_attention}};
}

}  // namespace mt
