// The run configuration: one JSON object, checked against a schema of known keys.
//
// A schema lists every accepted key (dotted, e.g. "trainer.epochs") with its default and a
// one-line help. resolve() starts from the defaults, lays the config file over them, then the
// `--set key=value` overrides, and rejects what does not fit:
//   - a key the schema does not know is an Error that names it ("unknown config key
//     'trainer.epoch'"), with the closest known key as a hint;
//   - a value of the wrong JSON type is an Error naming key, expected type and value.
// Values of `--set` are parsed as JSON when they parse ("3", "1e-4", "true", "[1,2]") and taken
// as strings otherwise, so `--set trainer.device=cuda` needs no quotes.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mt::training {

using json = nlohmann::json;

struct ConfigOption {
  std::string key;  // dotted path
  json default_value;
  std::string help;
  std::vector<std::string> choices;  // allowed string values; empty = any
};

class ConfigSchema {
 public:
  // Adds one leaf option. An array default is a leaf (e.g. loss weights); an object is not.
  ConfigSchema& add(const std::string& key, json default_value, const std::string& help,
                    std::vector<std::string> choices = {});
  const std::vector<ConfigOption>& options() const { return options_; }
  const ConfigOption* find(const std::string& key) const;

  // The defaults as one nested object.
  json defaults() const;
  // defaults <- file_config <- overrides ("a.b=value"), each checked.
  json resolve(const json& file_config, const std::vector<std::string>& overrides) const;
  // Every option with its default and help, one per line, for --help.
  std::string help_text() const;

 private:
  void check_value(const ConfigOption& option, const json& value) const;
  std::string closest_key(const std::string& key) const;
  std::vector<ConfigOption> options_;
};

// Reads a JSON file; a missing file or a syntax error is an Error naming the path.
json read_json_file(const std::string& path);
// Writes JSON atomically (path.tmp, then rename).
void write_json_file(const std::string& path, const json& value, int indent = 2);
// Looks up a dotted key in a nested object; an Error naming the key when absent.
const json& at_path(const json& config, const std::string& dotted_key);

}  // namespace mt::training
