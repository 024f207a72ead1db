// bf16-mixed precision in the model: which dtype each activation has, and the bf16 weight copies
// (made once per optimizer step, refresh_bf16_weights) against casting the weights at every use.
//
// The copies hold exactly weight.to(bf16), so everything the model computes from them, forward
// and backward, must have the bits of the per-use casts; and they must follow every change of
// the weights (an optimizer step, load_state_dict, parameters_changed), or the model would read
// stale weights.
#include <vector>

#include "autograd/functions_basic.h"
#include "autograd/functions_nn.h"
#include "autograd/parameter_version.h"
#include "models/transformer.h"
#include "optim/optimizer.h"
#include "tensor/random.h"
#include "tests/test_util.h"

using namespace mt;

namespace {

ModelConfig small_config(const std::string& target = "level") {
  ModelConfig c;
  c.n_features = 3;
  c.d_model = 16;
  c.n_heads = 2;
  c.n_layers = 2;
  c.d_ff = 32;
  c.attn_dropout = 0.0;
  c.target = target;
  return c;
}

// The Linears of a model, in registration order (input_proj, per layer Wqkv, out_proj, fc1,
// fc2, then fc_out).
std::vector<Linear*> linears_of(Module& m) {
  std::vector<Linear*> out;
  if (auto* l = dynamic_cast<Linear*>(&m)) out.push_back(l);
  for (auto& child : m.children()) {
    for (Linear* l : linears_of(*child.second)) out.push_back(l);
  }
  return out;
}

struct Step {
  Tensor loss;
  std::vector<Tensor> grads;
};

Step forward_backward(BTCTransformer& model, const Tensor& x, const Tensor& y) {
  model.zero_grad();
  const Var loss = smooth_l1_loss(model(Var(x)), Var(y), 0.5f);
  loss.backward();
  Step s{loss.value(), {}};
  for (const Var& p : model.parameters()) s.grads.push_back(p.grad());
  return s;
}

void check_same_bits(const Step& a, const Step& b) {
  CHECK(testing::max_abs_diff(a.loss, b.loss) == 0.0);
  REQUIRE(a.grads.size() == b.grads.size());
  for (size_t i = 0; i < a.grads.size(); ++i) {
    INFO("parameter " << i);
    CHECK(a.grads[i].dtype() == kFloat32);
    CHECK(testing::max_abs_diff(a.grads[i], b.grads[i]) == 0.0);
  }
}

// A Linear's output and gradients through its copies against the per-use casts.
void check_linear_against_casts(Linear& l, const Tensor& x0, Device device) {
  const Tensor u =
      testing::random_uniform({x0.size(0), l.out_features()}, 5).to(kFloat32).to(device);
  Var x(x0, true);
  const Var y = l(x);
  CHECK(y.dtype() == kBFloat16);
  sum(mul(cast(y, kFloat32), Var(u))).backward();
  const Tensor dx = x.grad(), dw = l.weight().grad();
  const Tensor db = l.bias().defined() ? l.bias().grad() : Tensor();
  l.zero_grad();
  Var x2(x0, true);
  const Var xb = x0.dtype() == kBFloat16 ? x2 : cast(x2, kBFloat16);
  const Var y2 = linear(xb, cast(l.weight(), kBFloat16),
                        l.bias().defined() ? cast(l.bias(), kBFloat16) : Var());
  sum(mul(cast(y2, kFloat32), Var(u))).backward();
  CHECK(testing::max_abs_diff(y.value().cpu(), y2.value().cpu()) == 0.0);
  CHECK(testing::max_abs_diff(dx.cpu(), x2.grad().cpu()) == 0.0);
  CHECK(dw.dtype() == kFloat32);
  CHECK(testing::max_abs_diff(dw.cpu(), l.weight().grad().cpu()) == 0.0);
  if (db.defined()) CHECK(testing::max_abs_diff(db.cpu(), l.bias().grad().cpu()) == 0.0);
  l.zero_grad();
}

}  // namespace

TEST_SUITE("bf16_mixed") {
  TEST_CASE("bf16-mixed: activations are bf16 from op to op; the output and loss float32") {
    Generator gen(1), data(2);
    BTCTransformer model(small_config(), gen);
    model.set_model_precision(Precision::BF16Mixed);
    const Var x(Tensor::randn({2, 9, 3}, data));
    const Var h = model.input_proj->forward(x);  // float32 data in, bf16 out
    CHECK(h.dtype() == kBFloat16);
    TransformerBlock& block = *model.layers[0];
    CHECK(block.norm1->forward(h).dtype() == kBFloat16);
    CHECK(block.attn->forward(h).dtype() == kBFloat16);
    CHECK(block.mlp->forward(h).dtype() == kBFloat16);
    CHECK(block.forward(h).dtype() == kBFloat16);
    const Var y = model(x);
    CHECK(y.dtype() == kFloat32);
    const Var loss = smooth_l1_loss(y, Var(Tensor::randn({2, 9, 3}, data)), 0.5f);
    CHECK(loss.dtype() == kFloat32);
    loss.backward();
    for (const auto& [name, p] : model.named_parameters()) {
      INFO(name);
      REQUIRE(p.grad().defined());
      CHECK(p.grad().dtype() == kFloat32);  // the float32 masters get float32 gradients
    }
    // Target "delta": the head stays float32 (issue 4) and reads the bf16 trunk widened.
    BTCTransformer delta(small_config("delta"), gen);
    delta.set_model_precision(Precision::BF16Mixed);
    CHECK(delta.fc_out->precision() == Precision::Float32);
    CHECK(delta(x).dtype() == kFloat32);
    CHECK_FALSE(delta.fc_out->weight_bf16().defined());  // never made: the head reads float32
  }

  TEST_CASE("bf16-mixed Linear: the copies give the bits of casting the weights at every use") {
    Generator gen(3);
    for (bool bias : {true, false}) {
      Linear l(24, 40, bias, gen);
      l.set_precision(Precision::BF16Mixed);
      const Tensor x = testing::random_uniform({7, 24}, 4).to(kFloat32);
      check_linear_against_casts(l, x, Device::cpu());
      check_linear_against_casts(l, x.to(kBFloat16), Device::cpu());  // a bf16 activation
    }
  }

  TEST_CASE("bf16-mixed: the copies are made once per parameter change, for the whole model") {
    Generator gen(5), data(6);
    BTCTransformer model(small_config(), gen);
    model.set_model_precision(Precision::BF16Mixed);
    const std::vector<Linear*> ls = linears_of(model);
    REQUIRE(ls.size() == 2 + 4 * 2);  // input_proj, fc_out; Wqkv, out_proj, fc1, fc2 per layer
    CHECK(refresh_bf16_weights(model) == int(ls.size()));  // all of them, in one conversion
    CHECK(refresh_bf16_weights(model) == 0);               // nothing changed since
    for (Linear* l : ls) {
      CHECK(testing::max_abs_diff(l->weight_bf16(), l->weight().value().to(kBFloat16)) == 0.0);
      CHECK(testing::max_abs_diff(l->bias_bf16(), l->bias().value().to(kBFloat16)) == 0.0);
    }
    // A forward reads the copies as they are: no new ones.
    const void* before = ls[1]->weight_bf16().raw_data();
    const Tensor x = Tensor::randn({2, 9, 3}, data), y = Tensor::randn({2, 9, 3}, data);
    forward_backward(model, x, y);
    CHECK(ls[1]->weight_bf16().raw_data() == before);
    // An optimizer step changes every weight: new copies, in new memory, and the old copy still
    // holds the old weights (a graph recorded before the step may still read it).
    const Tensor old_copy = ls[1]->weight_bf16(), old_weight = ls[1]->weight().value().clone();
    AdamW opt(make_param_groups(model.named_parameters(), 1e-2, 0.0));
    opt.step();
    CHECK(ls[1]->bf16_copies_stale());
    CHECK(refresh_bf16_weights(model) == int(ls.size()));
    CHECK(ls[1]->weight_bf16().raw_data() != before);
    CHECK(testing::max_abs_diff(ls[1]->weight_bf16(), ls[1]->weight().value().to(kBFloat16)) ==
          0.0);
    CHECK(testing::max_abs_diff(old_copy, old_weight.to(kBFloat16)) == 0.0);
    // load_state_dict and parameters_changed() make them stale too.
    model.load_state_dict(model.state_dict());
    CHECK(refresh_bf16_weights(model) == int(ls.size()));
    parameters_changed();
    CHECK(ls[0]->bf16_copies_stale());
    model(Var(x));  // the forward refreshes them itself
    CHECK_FALSE(ls[0]->bf16_copies_stale());
  }

  TEST_CASE("bf16-mixed: a model trained with the copies equals a fresh one with its weights") {
    // Three AdamW steps through the copies, then the same batch through this model and through a
    // new model (no copy history) loaded with its weights: the same loss and gradients, bit for
    // bit. A copy that missed a step would make them differ.
    Generator gen(7), gen2(8), data(9);
    BTCTransformer a(small_config(), gen), b(small_config(), gen2);
    a.set_model_precision(Precision::BF16Mixed);
    b.set_model_precision(Precision::BF16Mixed);
    const Tensor x = Tensor::randn({3, 11, 3}, data), y = Tensor::randn({3, 11, 3}, data);
    AdamW opt(make_param_groups(a.named_parameters(), 1e-2, 1e-3));
    for (int step = 0; step < 3; ++step) {
      forward_backward(a, x, y);
      opt.step();
    }
    // a first: b's load_state_dict would mark a's copies stale as well (one version for all).
    const Step after_steps = forward_backward(a, x, y);
    b.load_state_dict(a.state_dict());
    check_same_bits(after_steps, forward_backward(b, x, y));
  }

  CUDA_TEST_CASE("cuda: bf16-mixed Linear copies on the GPU: the bits of per-use casts") {
    Generator gen(10);
    Linear l(24, 40, true, gen);
    l.to(Device::cuda());
    l.set_precision(Precision::BF16Mixed);
    testing::PoisonAllocations poison;
    const Tensor x = testing::random_uniform({37, 24}, 11).to(kFloat32).cuda();
    check_linear_against_casts(l, x, Device::cuda());
    check_linear_against_casts(l, x.to(kBFloat16), Device::cuda());
    CHECK(l.weight_bf16().is_cuda());
    CHECK(testing::max_abs_diff(l.weight_bf16().cpu(), l.weight().value().cpu().to(kBFloat16)) ==
          0.0);
  }
}  // TEST_SUITE
