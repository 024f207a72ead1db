#include "training/config.h"

#include <algorithm>
#include <sstream>

#include "base/error.h"
#include "training/files.h"

namespace mt::training {

namespace {

const char* type_name(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "bool";
  if (v.is_number_integer()) return "integer";
  if (v.is_number()) return "number";
  if (v.is_string()) return "string";
  if (v.is_array()) return "array";
  return "object";
}

// Does `value` fit where `def` is the default? Integers fit numbers, not the reverse; a null
// default accepts anything (an optional setting).
bool same_kind(const json& def, const json& value) {
  if (def.is_null()) return true;
  if (def.is_number_integer()) return value.is_number_integer();
  if (def.is_number()) return value.is_number();
  return std::string(type_name(def)) == type_name(value);
}

// Edit distance, for the "did you mean" hint on a misspelt key.
size_t distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::vector<std::string> split_dots(const std::string& key) {
  std::vector<std::string> parts;
  std::stringstream ss(key);
  std::string part;
  while (std::getline(ss, part, '.')) parts.push_back(part);
  return parts;
}

// "a.b.c" -> the JSON pointer /a/b/c.
json::json_pointer pointer(std::string key) {
  std::replace(key.begin(), key.end(), '.', '/');
  return json::json_pointer("/" + key);
}

bool is_section(const std::vector<ConfigOption>& options, const std::string& key) {
  return std::any_of(options.begin(), options.end(),
                     [&](const ConfigOption& o) { return o.key.rfind(key + ".", 0) == 0; });
}

}  // namespace

ConfigSchema& ConfigSchema::add(const std::string& key, json default_value, const std::string& help,
                                std::vector<std::string> choices) {
  CHECK(!key.empty() && find(key) == nullptr, "config schema: key '{}' is empty or added twice",
        key);
  CHECK(!default_value.is_object(), "config schema: default of '{}' must be a leaf, not an object",
        key);
  options_.push_back({key, std::move(default_value), help, std::move(choices)});
  return *this;
}

const ConfigOption* ConfigSchema::find(const std::string& key) const {
  for (const ConfigOption& o : options_) {
    if (o.key == key) return &o;
  }
  return nullptr;
}

json ConfigSchema::defaults() const {
  json out = json::object();
  for (const ConfigOption& o : options_) out[pointer(o.key)] = o.default_value;
  return out;
}

std::string ConfigSchema::closest_key(const std::string& key) const {
  std::string best;
  size_t best_d = key.size() / 2 + 2;  // beyond this the hint is noise
  for (const ConfigOption& o : options_) {
    const size_t d = distance(key, o.key);
    if (d < best_d) best_d = d, best = o.key;
  }
  return best;
}

void ConfigSchema::check_value(const ConfigOption& option, const json& value) const {
  CHECK(same_kind(option.default_value, value), "config key '{}': expected {} (like {}), got {} {}",
        option.key, type_name(option.default_value), option.default_value.dump(), type_name(value),
        value.dump());
  if (!option.choices.empty() && value.is_string()) {
    const bool ok = std::find(option.choices.begin(), option.choices.end(),
                              value.get<std::string>()) != option.choices.end();
    CHECK(ok, "config key '{}': '{}' is not one of {}", option.key, value.get<std::string>(),
          fmt::join(option.choices, ", "));
  }
}

json ConfigSchema::resolve(const json& file_config,
                           const std::vector<std::string>& overrides) const {
  json config = defaults();
  // Walk the file, checking every leaf against the schema by its full dotted key.
  std::vector<std::pair<std::string, const json*>> stack{{"", &file_config}};
  CHECK(file_config.is_object() || file_config.is_null(), "config: expected a JSON object, got {}",
        type_name(file_config));
  while (!stack.empty()) {
    auto [prefix, node] = stack.back();
    stack.pop_back();
    if (node->is_null()) continue;
    for (auto it = node->begin(); it != node->end(); ++it) {
      const std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
      const ConfigOption* option = find(key);
      if (option == nullptr && it.value().is_object()) {
        CHECK(is_section(options_, key), "unknown config section '{}'", key);
        stack.push_back({key, &it.value()});
        continue;
      }
      CHECK(option != nullptr || !is_section(options_, key),
            "config section '{}' must be a JSON object, got {}", key, type_name(it.value()));
      const std::string hint = option ? "" : closest_key(key);
      CHECK(option != nullptr, "unknown config key '{}'{}", key,
            hint.empty() ? "" : " (did you mean '" + hint + "'?)");
      check_value(*option, it.value());
      config[pointer(key)] = it.value();
    }
  }
  for (const std::string& assignment : overrides) {
    const size_t eq = assignment.find('=');
    CHECK(eq != std::string::npos && eq > 0, "--set expects key=value, got '{}'", assignment);
    const std::string key = assignment.substr(0, eq);
    const std::string text = assignment.substr(eq + 1);
    const ConfigOption* option = find(key);
    const std::string hint = option ? "" : closest_key(key);
    CHECK(option != nullptr, "unknown config key '{}' in --set{}", key,
          hint.empty() ? "" : " (did you mean '" + hint + "'?)");
    json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded() || (option->default_value.is_string() && !value.is_string())) {
      value = text;  // bare words are strings: --set trainer.device=cuda
    }
    check_value(*option, value);
    config[pointer(key)] = value;
  }
  return config;
}

std::string ConfigSchema::help_text() const {
  size_t width = 0;
  for (const ConfigOption& o : options_) width = std::max(width, o.key.size());
  std::string out;
  for (const ConfigOption& o : options_) {
    std::string line =
        fmt::format("  {:<{}}  {:<14} {}", o.key, width, o.default_value.dump(), o.help);
    if (!o.choices.empty()) line += fmt::format(" [{}]", fmt::join(o.choices, "|"));
    out += line + "\n";
  }
  return out;
}

json read_json_file(const std::string& path) {
  const std::string text = read_file(path);
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    FAIL("'{}' is not valid JSON: {}", path, e.what());
  }
}

void write_json_file(const std::string& path, const json& value, int indent) {
  write_file_atomic(path, value.dump(indent) + "\n");
}

const json& at_path(const json& config, const std::string& dotted_key) {
  const json* node = &config;
  for (const std::string& part : split_dots(dotted_key)) {
    CHECK(node->is_object() && node->contains(part), "config has no key '{}'", dotted_key);
    node = &(*node)[part];
  }
  return *node;
}

}  // namespace mt::training
