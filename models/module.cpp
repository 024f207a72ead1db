#include "models/module.h"

#include <fmt/format.h>

#include <set>

#include "autograd/parameter_version.h"
#include "base/error.h"

namespace mt {

Precision parse_precision(const std::string& name) {
  if (name == "fp32" || name == "32" || name == "float32") return Precision::Float32;
  if (name == "bf16-mixed" || name == "bf16") return Precision::BF16Mixed;
  FAIL("precision: expected \"fp32\" or \"bf16-mixed\", got \"{}\"", name);
}

const char* precision_name(Precision p) {
  return p == Precision::BF16Mixed ? "bf16-mixed" : "fp32";
}

Var Module::register_parameter(const std::string& name, Tensor value) {
  CHECK(name.find('.') == std::string::npos && !name.empty(),
        "{}: parameter name '{}' must be non-empty and have no '.'", type_name_, name);
  for (const auto& p : params_) {
    CHECK(p.first != name, "{}: parameter '{}' registered twice", type_name_, name);
  }
  Var v(std::move(value), /*requires_grad=*/true, name);
  params_.emplace_back(name, v);
  return v;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> child) {
  CHECK(child != nullptr, "{}: child module '{}' is null", type_name_, name);
  for (const auto& c : children_) {
    CHECK(c.first != name, "{}: child module '{}' registered twice", type_name_, name);
  }
  child->training_ = training_;
  child->precision_ = precision_;
  child->generator_ = generator_;
  children_.emplace_back(name, std::move(child));
}

void Module::collect(const std::string& prefix,
                     std::vector<std::pair<std::string, Var>>& out) const {
  for (const auto& p : params_) out.emplace_back(prefix + p.first, p.second);
  for (const auto& c : children_) c.second->collect(prefix + c.first + ".", out);
}

std::vector<std::pair<std::string, Var>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Var>> out;
  collect("", out);
  return out;
}

std::vector<Var> Module::parameters() const {
  std::vector<Var> out;
  for (auto& p : named_parameters()) out.push_back(p.second);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : named_parameters()) n += p.second.value().numel();
  return n;
}

void Module::zero_grad() {
  for (auto& p : named_parameters()) p.second.zero_grad();
}

std::map<std::string, Tensor> Module::state_dict() const {
  std::map<std::string, Tensor> out;
  for (const auto& p : named_parameters()) out[p.first] = p.second.value();
  return out;
}

void Module::load_state_dict(const std::map<std::string, Tensor>& tensors, bool strict) {
  parameters_changed();  // first: also when a check below stops a partial load
  std::set<std::string> used;
  for (auto& p : named_parameters()) {
    auto it = tensors.find(p.first);
    if (it == tensors.end()) {
      CHECK(!strict, "load_state_dict: missing parameter '{}' (expected {})", p.first,
            p.second.value().describe());
      continue;
    }
    used.insert(p.first);
    Tensor& dst = p.second.mutable_value();
    CHECK(it->second.shape() == dst.shape(),
          "load_state_dict: '{}' has shape {} in the file, the model expects {}", p.first,
          shape_str(it->second.shape()), shape_str(dst.shape()));
    dst.copy_(it->second);
  }
  if (strict) {
    for (const auto& t : tensors) {
      CHECK(used.count(t.first) == 1, "load_state_dict: unexpected parameter '{}' ({})", t.first,
            t.second.describe());
    }
  }
}

void Module::to(Device device) {
  parameters_changed();
  for (auto& p : named_parameters()) {
    p.second.zero_grad();
    p.second.mutable_value() = p.second.value().to(device);
  }
}

void Module::to(DType dtype) {
  parameters_changed();
  for (auto& p : named_parameters()) {
    p.second.zero_grad();
    p.second.mutable_value() = p.second.value().to(dtype);
  }
}

void Module::train(bool on) {
  training_ = on;
  for (auto& c : children_) c.second->train(on);
}

void Module::set_precision(Precision p) {
  precision_ = p;
  for (auto& c : children_) c.second->set_precision(p);
}

void Module::set_generator(Generator* gen) {
  generator_ = gen;
  for (auto& c : children_) c.second->set_generator(gen);
}

Generator& Module::generator() const {
  return generator_ != nullptr ? *generator_ : default_generator();
}

void Module::summarize(const std::string& prefix, int depth, std::string& out) const {
  std::string shapes;
  for (const auto& p : params_) {
    shapes += fmt::format("{}{} {}", shapes.empty() ? "" : ", ", p.first,
                          shape_str(p.second.value().shape()));
  }
  std::string label = prefix.empty() ? "(model)" : prefix;
  out += fmt::format("{:<40} {:<20} {:>10}  {}\n", std::string(2 * depth, ' ') + label, type_name_,
                     num_parameters(), shapes);
  for (const auto& c : children_) {
    c.second->summarize(prefix.empty() ? c.first : prefix + "." + c.first, depth + 1, out);
  }
}

std::string Module::summary() const {
  std::string out =
      fmt::format("{:<40} {:<20} {:>10}  {}\n", "module", "type", "params", "own parameters");
  summarize("", 0, out);
  int64_t n = num_parameters();
  out += fmt::format("total parameters: {} ({:.3f} MB as float32)\n", n, n * 4.0 / 1e6);
  return out;
}

}  // namespace mt
