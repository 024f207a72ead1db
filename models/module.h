// Module: a piece of a model that owns named parameters and child modules, as torch.nn.Module.
//
// Names are PyTorch's: a parameter registered as "weight" in a child registered as "fc1" inside
// a child "mlp" of child "layers.0" is "layers.0.mlp.fc1.weight", so a state dict saved here
// loads into the PyTorch model with no renaming. named_parameters() walks parameters first, then
// children, each in registration order (PyTorch's order too).
//
// Mode (train/eval), precision and the dropout generator are set on the root and propagate to
// every child, so a leaf module can read its own copy while running forward.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/var.h"
#include "tensor/random.h"

namespace mt {

// The autocast policy, in one place. Float32: everything in float32 (or float64 for gradchecks:
// modules follow their parameters' dtype). BF16Mixed (the seed's "bf16-mixed"): float32 master
// weights and optimizer state; every Linear reads bf16 (its input cast once if it came in
// float32, its weights from bf16 copies made once per optimizer step) and writes bf16, so the
// norms, GELU, rotary, attention and residual adds run on bf16 activations, each accumulating in
// float32; norm and softmax statistics stay float32, and BTCTransformer widens its output to
// float32 for the loss (models/layers.h, models/transformer.h).
enum class Precision { Float32, BF16Mixed };
// "fp32" / "32" / "float32" and "bf16-mixed" / "bf16"; anything else is an Error.
Precision parse_precision(const std::string& name);
const char* precision_name(Precision p);  // "fp32" or "bf16-mixed"

class Module {
 public:
  explicit Module(std::string type_name) : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // [.., in] -> [.., out]: every module here maps one tensor to one tensor.
  virtual Var forward(const Var& x) = 0;
  Var operator()(const Var& x) { return forward(x); }

  // ---- parameters ------------------------------------------------------------------------
  // ("layers.0.attn.Wqkv.weight", Var) pairs: own parameters, then children, recursively.
  std::vector<std::pair<std::string, Var>> named_parameters() const;
  std::vector<Var> parameters() const;
  int64_t num_parameters() const;
  // Sets every parameter's grad to undefined (set_to_none=True).
  void zero_grad();
  // Name -> value (the live tensors, not copies; save_safetensors copies them to the CPU).
  std::map<std::string, Tensor> state_dict() const;
  // Copies values into the parameters (converting dtype and device to the parameter's). With
  // strict, a missing or unexpected name or a shape mismatch is an Error naming it.
  void load_state_dict(const std::map<std::string, Tensor>& tensors, bool strict = true);
  // Moves (and/or casts) every parameter; gradients are dropped.
  void to(Device device);
  void to(DType dtype);

  // ---- modes -----------------------------------------------------------------------------
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void set_precision(Precision p);  // this module and every child
  Precision precision() const { return precision_; }
  // The generator dropout draws from (not owned); null means default_generator().
  void set_generator(Generator* gen);
  Generator& generator() const;

  // ---- introspection ---------------------------------------------------------------------
  const std::string& type_name() const { return type_name_; }
  // Children in registration order, with their local names ("layers.0", "attn", ...).
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const {
    return children_;
  }
  // One line per module: qualified name, type, own parameter shapes, parameter count of the
  // subtree; then the total. Printed at the start of training.
  std::string summary() const;

 protected:
  // Registers a new leaf parameter (requires_grad) under `name`; returns it.
  Var register_parameter(const std::string& name, Tensor value);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> child) {
    add_child(name, child);
    return child;
  }

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> child);
  void collect(const std::string& prefix, std::vector<std::pair<std::string, Var>>& out) const;
  void summarize(const std::string& prefix, int depth, std::string& out) const;

  std::string type_name_;
  std::vector<std::pair<std::string, Var>> params_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
  Precision precision_ = Precision::Float32;
  Generator* generator_ = nullptr;
};

}  // namespace mt
