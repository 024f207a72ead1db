// Modules and the BTC Transformer: names, counts, init, layout, rotary, causality, gradients.
#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "autograd/functions_basic.h"
#include "autograd/functions_nn.h"
#include "autograd/gradcheck.h"
#include "models/config.h"
#include "models/transformer.h"
#include "optim/clip.h"
#include "optim/optimizer.h"
#include "tests/test_util.h"

using namespace mt;

namespace {

ModelConfig tiny_config(double dropout = 0.0) {
  ModelConfig c;
  c.n_features = 3;
  c.d_model = 8;
  c.n_heads = 2;
  c.n_layers = 1;
  c.d_ff = 16;
  c.attn_dropout = dropout;
  return c;
}

// sum(y * u) for a fixed u: a scalar whose gradient reaches every output element differently.
double weighted_sum(const Tensor& y, const Tensor& u) {
  auto a = y.to_vector<double>(), b = u.to_vector<double>();
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Next-step prediction of three phase-shifted sines: a real learning test that runs the model,
// the loss, backward, clipping and AdamW together; 40 steps take well under a second. Returns
// the first and the last loss.
std::pair<double, double> train_on_sines(BTCTransformer& model) {
  std::vector<double> v;
  for (int b = 0; b < 4; ++b) {
    for (int t = 0; t < 17; ++t) {
      for (int f = 0; f < 3; ++f) v.push_back(std::sin(0.4 * t + 0.7 * b + 2.0 * f));
    }
  }
  Tensor series = Tensor::from_doubles(v, {4, 17, 3});
  Var x(series.narrow(1, 0, 16).contiguous()), target(series.narrow(1, 1, 16).contiguous());
  AdamW opt(make_param_groups(model.named_parameters(), 1e-2, 1e-3, true));
  double first = 0.0, last = 0.0;
  for (int step = 0; step < 40; ++step) {
    Var loss = mse_loss(model.forward(x), target);
    if (step == 0) first = loss.item();
    last = loss.item();
    opt.zero_grad();
    loss.backward();
    opt.step(clip_grad_norm(model.parameters(), 1.0).coef);
  }
  return {first, last};
}

}  // namespace

TEST_CASE("models: the seed config has 200,133 parameters under PyTorch's names") {
  ModelConfig cfg = ModelConfig::from_json(load_json_file("models/configs/btc_seed.json")["model"]);
  Generator gen(0);
  BTCTransformer model(cfg, gen);
  CHECK(model.num_parameters() == 200133);

  std::vector<std::string> expected = {"input_proj.weight", "input_proj.bias"};
  for (int i = 0; i < 4; ++i) {
    for (const char* n : {"attn.Wqkv.weight", "attn.Wqkv.bias", "attn.out_proj.weight",
                          "attn.out_proj.bias", "norm1.weight", "norm2.weight", "mlp.fc1.weight",
                          "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"}) {
      expected.push_back("layers." + std::to_string(i) + "." + n);
    }
  }
  expected.push_back("fc_out.weight");
  expected.push_back("fc_out.bias");
  auto named = model.named_parameters();
  std::vector<std::string> names;
  for (const auto& p : named) names.push_back(p.first);
  CHECK(names == expected);

  auto sd = model.state_dict();
  CHECK(sd.at("input_proj.weight").shape() == Shape{64, 5});  // Linear weights are [out, in]
  CHECK(sd.at("layers.3.attn.Wqkv.weight").shape() == Shape{192, 64});
  CHECK(sd.at("layers.3.attn.Wqkv.bias").shape() == Shape{192});
  CHECK(sd.at("layers.0.mlp.fc1.weight").shape() == Shape{256, 64});
  CHECK(sd.at("layers.0.mlp.fc2.weight").shape() == Shape{64, 256});
  CHECK(sd.at("layers.0.norm2.weight").shape() == Shape{64});
  CHECK(sd.at("fc_out.weight").shape() == Shape{5, 64});
  for (const auto& p : named) CHECK(p.second.requires_grad());
}

TEST_CASE("models: per-module summary") {
  Generator gen(0);
  BTCTransformer model(tiny_config(), gen);
  std::string s = model.summary();
  INFO(s);
  CHECK(s.find("layers.0.attn.Wqkv") != std::string::npos);
  CHECK(s.find("MultiHeadAttention") != std::string::npos);
  CHECK(s.find("weight [24, 8]") != std::string::npos);
  CHECK(s.find("total parameters: 643") != std::string::npos);
  CHECK(model.num_parameters() == 643);
}

TEST_CASE("models: config parsing and errors") {
  ModelConfig c = ModelConfig::from_json({{"d_model", 32}, {"n_heads", 4}, {"target", "delta"}});
  CHECK(c.head_dim() == 8);
  CHECK(c.target == "delta");
  CHECK(ModelConfig::from_json(c.to_json()).to_json() == c.to_json());
  ModelConfig tiny = ModelConfig::from_json(load_json_file("models/configs/tiny.json")["model"]);
  CHECK(tiny.n_layers >= 1);
  CHECK_THROWS_WITH_TEXT(ModelConfig::from_json({{"d_modle", 32}}), "model.d_modle: unknown key");
  CHECK_THROWS_WITH_TEXT(ModelConfig::from_json({{"d_model", 30}, {"n_heads", 4}}),
                         "must divide d_model");
  CHECK_THROWS_WITH_TEXT(ModelConfig::from_json({{"d_model", "64"}}), "model.d_model: expected");
  CHECK_THROWS_WITH_TEXT(ModelConfig::from_json({{"target", "price"}}), "model.target");
  CHECK_THROWS_WITH_TEXT(load_json_file("models/configs/no_such.json"), "cannot open");
}

TEST_CASE("models: Linear init bounds (PyTorch default and Xavier)") {
  Generator gen(7);
  Linear pt(64, 256, true, gen);
  auto w = pt.weight().value().to_vector<double>();
  double bound = 1.0 / 8.0, max_abs = 0.0, mean = 0.0;
  for (double x : w) {
    max_abs = std::max(max_abs, std::abs(x));
    mean += x / w.size();
  }
  CHECK(max_abs <= bound);
  CHECK(max_abs > 0.99 * bound);  // 16384 draws reach the edge of U(-b, b)
  CHECK(std::abs(mean) < 0.01 * bound * 8);
  for (double x : pt.bias().value().to_vector<double>()) CHECK(std::abs(x) <= bound);

  Linear xv(64, 256, true, gen, LinearInit::Xavier);
  double xb = std::sqrt(6.0 / (64 + 256)), xmax = 0.0;
  for (double x : xv.weight().value().to_vector<double>()) xmax = std::max(xmax, std::abs(x));
  CHECK(xmax <= xb);
  CHECK(xmax > 0.99 * xb);
  for (double x : xv.bias().value().to_vector<double>()) CHECK(x == 0.0);

  Generator a(3), b(3);
  CHECK(testing::max_abs_diff(Linear(4, 5, true, a).weight().value(),
                              Linear(4, 5, true, b).weight().value()) == 0.0);
  CHECK_THROWS_WITH_TEXT(pt.forward(Var(Tensor::ones({2, 63}))), "expected input [..., 64]");
}

TEST_CASE("models: fused QKV rows are q, then k, then v, each head-major") {
  // Zero weights and bias = 0, 1, ..., 3C - 1 make qkv = the row index. With T = 1 attention
  // returns v itself, so an identity out_proj exposes which rows attention read as v.
  AttentionConfig ac;
  ac.d_model = 4;
  ac.n_heads = 2;
  ac.dropout = 0.0;
  Generator gen(1);
  MultiHeadAttention mha(ac, gen);
  Tensor(mha.Wqkv->weight().value()).zero_();
  Tensor(mha.Wqkv->bias().value()).copy_(Tensor::arange(0, 12));
  Tensor(mha.out_proj->weight().value())
      .copy_(Tensor::from_doubles({1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}, {4, 4}));
  Tensor(mha.out_proj->bias().value()).zero_();
  Tensor y = mha.forward(Var(Tensor::ones({1, 1, 4}))).value();
  CHECK(y.to_vector<double>() == std::vector<double>{8, 9, 10, 11});
}

TEST_CASE("models: rotary inside attention against hand-computed values") {
  // One head of D = 4, q = k = v = x (Wqkv = [I; I; I]), out_proj = I, no bias.
  // x0 = [1, 0, 0, 0], x1 = [1, 0, 0, 2]. Position 1 rotates the pairs (0, 2) by 1 rad and
  // (1, 3) by 10000^(-1/2) = 0.01 rad: q1 = [cos 1, -2 sin .01, sin 1, 2 cos .01].
  //   s10 = q1 . k0 / 2 = cos(1) / 2 = 0.270151153,  s11 = |x1|^2 / 2 = 2.5
  //   w1 = 1 / (1 + exp(s10 - s11)) = 0.902898108;  y1 = w0 x0 + w1 x1 = [1, 0, 0, 2 w1]
  // (without rotary s10 would be 0.5 and y1[3] = 1.7616.)  y0 = x0: only key 0 is visible.
  AttentionConfig ac;
  ac.d_model = 4;
  ac.n_heads = 1;
  ac.dropout = 0.0;
  ac.bias = false;
  Generator gen(1);
  MultiHeadAttention mha(ac, gen);
  std::vector<double> eye3;
  for (int r = 0; r < 12; ++r) {
    for (int c = 0; c < 4; ++c) eye3.push_back(r % 4 == c ? 1.0 : 0.0);
  }
  Tensor(mha.Wqkv->weight().value()).copy_(Tensor::from_doubles(eye3, {12, 4}));
  Tensor(mha.out_proj->weight().value())
      .copy_(Tensor::from_doubles({1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}, {4, 4}));
  Tensor x = Tensor::from_doubles({1, 0, 0, 0, 1, 0, 0, 2}, {1, 2, 4});
  auto y = mha.forward(Var(x)).value().to_vector<double>();
  const std::vector<double> expected = {1, 0, 0, 0, 1, 0, 0, 1.805796216};
  for (size_t i = 0; i < y.size(); ++i) {
    INFO("element " << i);
    CHECK(y[i] == doctest::Approx(expected[i]).epsilon(1e-6));
  }
}

TEST_CASE("models: causality (outputs at t ignore inputs after t)") {
  Generator gen(2);
  BTCTransformer model(tiny_config(0.1), gen);
  model.eval();
  Generator data(5);
  Tensor x = Tensor::randn({2, 9, 3}, data);
  Tensor y = model.forward(Var(x)).value();
  Tensor x2 = x.clone();
  x2.narrow(1, 5, 4).copy_(Tensor::randn({2, 4, 3}, data));
  Tensor y2 = model.forward(Var(x2)).value();
  CHECK(testing::max_abs_diff(y.narrow(1, 0, 5), y2.narrow(1, 0, 5)) == 0.0);
  CHECK(testing::max_abs_diff(y.narrow(1, 5, 4), y2.narrow(1, 5, 4)) > 1e-3);
}

TEST_CASE("models: float64 gradients of a tiny model end to end (with dropout)") {
  Generator gen(3);
  BTCTransformer model(tiny_config(0.2), gen, kFloat64);
  Generator drop(11);
  model.set_generator(&drop);  // reset before each forward: every call draws the same masks
  Generator data(4);
  Tensor x = Tensor::randn({2, 5, 3}, data, kFloat64);
  Tensor u = Tensor::uniform({2, 5, 3}, 0.5, 1.5, data, kFloat64);
  auto run = [&](const Var& input) {
    drop.set_state(11, 0);
    return model.forward(input);
  };

  // The input's gradient through the library's gradcheck.
  gradcheck([&](const std::vector<Var>& v) { return run(v[0]); }, {x});

  // Every parameter's gradient against central differences of L = sum(y * u).
  model.zero_grad();
  run(Var(x)).backward(u);
  double worst = 0.0;
  for (auto& [name, p] : model.named_parameters()) {
    Tensor value = p.mutable_value();
    auto grad = p.grad().to_vector<double>();
    double* data_ptr = value.data<double>();
    for (int64_t j = 0; j < value.numel(); ++j) {
      const double keep = data_ptr[j], eps = 1e-6;
      NoGradGuard no_grad;
      data_ptr[j] = keep + eps;
      double lp = weighted_sum(run(Var(x)).value(), u);
      data_ptr[j] = keep - eps;
      double lm = weighted_sum(run(Var(x)).value(), u);
      data_ptr[j] = keep;
      double numeric = (lp - lm) / (2 * eps), err = std::abs(numeric - grad[j]);
      worst = std::max(worst, err / (1e-6 + 1e-4 * std::abs(numeric)));
      if (err > 1e-6 + 1e-4 * std::abs(numeric)) {
        FAIL_CHECK(name << "[" << j << "]: analytic " << grad[j] << " numeric " << numeric);
      }
    }
  }
  CHECK(worst <= 1.0);
}

TEST_CASE("models: train mode dropout is seeded; eval mode is deterministic") {
  Generator gen(3);
  BTCTransformer model(tiny_config(0.3), gen);
  Generator data(9);
  Var x(Tensor::randn({2, 6, 3}, data));
  Generator g1(42), g2(42), g3(43);
  model.set_generator(&g1);
  Tensor a = model.forward(x).value();
  model.set_generator(&g2);
  Tensor b = model.forward(x).value();
  model.set_generator(&g3);
  Tensor c = model.forward(x).value();
  CHECK(testing::max_abs_diff(a, b) == 0.0);
  CHECK(testing::max_abs_diff(a, c) > 1e-4);
  CHECK(g1.offset() == 1);  // one attention draw per layer and forward
  model.eval();
  CHECK_FALSE(model.layers[0]->attn->is_training());
  Tensor e1 = model.forward(x).value(), e2 = model.forward(x).value();
  CHECK(testing::max_abs_diff(e1, e2) == 0.0);
  CHECK(g3.offset() == 1);  // eval draws nothing
}

TEST_CASE("models: bf16-mixed is close to float32 but not equal") {
  Generator gen(3);
  BTCTransformer model(tiny_config(), gen);
  Generator data(9);
  Var x(Tensor::randn({2, 7, 3}, data));
  Tensor full = model.forward(x).value();
  model.set_model_precision(Precision::BF16Mixed);
  CHECK(model.layers[0]->mlp->fc1->precision() == Precision::BF16Mixed);
  Var y = model.forward(x);
  CHECK(y.dtype() == kFloat32);
  double err = testing::rel_error(y.value(), full);
  CHECK(err > 1e-5);  // bf16 rounding did happen
  CHECK(err < 3e-2);  // 8 mantissa bits: ~4e-3 per rounding
  // Gradients reach the float32 master weights through the casts.
  sum(y).backward();
  CHECK(model.layers[0]->attn->Wqkv->weight().grad().dtype() == kFloat32);

  ModelConfig delta = tiny_config();
  delta.target = "delta";
  BTCTransformer dm(delta, gen);
  dm.set_model_precision(Precision::BF16Mixed);
  CHECK(dm.fc_out->precision() == Precision::Float32);
  CHECK(dm.input_proj->precision() == Precision::BF16Mixed);
  CHECK(parse_precision("bf16-mixed") == Precision::BF16Mixed);
  CHECK_THROWS_WITH_TEXT(parse_precision("fp8"), "precision");
}

TEST_CASE("models: state dict round trip and errors") {
  Generator g1(1), g2(2);
  BTCTransformer a(tiny_config(), g1), b(tiny_config(), g2);
  b.load_state_dict(a.state_dict());
  Var x(Tensor::randn({1, 4, 3}, g1));
  a.eval();
  b.eval();
  CHECK(testing::max_abs_diff(a.forward(x).value(), b.forward(x).value()) == 0.0);
  auto sd = a.state_dict();
  sd.erase("fc_out.bias");
  CHECK_THROWS_WITH_TEXT(b.load_state_dict(sd), "missing parameter 'fc_out.bias'");
  b.load_state_dict(sd, /*strict=*/false);
  sd["fc_out.bias"] = Tensor::zeros({4});
  CHECK_THROWS_WITH_TEXT(b.load_state_dict(sd), "'fc_out.bias' has shape [4]");
  sd["fc_out.bias"] = Tensor::zeros({3});
  sd["extra"] = Tensor::zeros({1});
  CHECK_THROWS_WITH_TEXT(b.load_state_dict(sd), "unexpected parameter 'extra'");
}

TEST_CASE("models: AdamW trains the tiny model on a smooth series") {
  Generator gen(5);
  BTCTransformer model(tiny_config(), gen);
  const auto [first, last] = train_on_sines(model);
  INFO("first " << first << " last " << last);
  CHECK(last < 0.2 * first);
}

TEST_CASE("models: \"norm\": \"layernorm\" builds LayerNorm blocks that train") {
  ModelConfig cfg = ModelConfig::from_json({{"n_features", 3},
                                            {"d_model", 8},
                                            {"n_heads", 2},
                                            {"n_layers", 1},
                                            {"d_ff", 16},
                                            {"attn_dropout", 0.0},
                                            {"norm", "layernorm"}});
  CHECK(cfg.norm == "layernorm");
  CHECK(ModelConfig::from_json(cfg.to_json()).norm == "layernorm");
  CHECK(ModelConfig().norm == "rmsnorm");  // the default: the seed's model
  CHECK_THROWS_WITH_TEXT(ModelConfig::from_json({{"norm", "batchnorm"}}),
                         "model.norm: expected \"rmsnorm\" or \"layernorm\", got \"batchnorm\"");
  Generator gen(5);
  BTCTransformer model(cfg, gen);
  // The RMSNorm model's 643 parameters plus a bias [8] for each of the two norms.
  CHECK(model.num_parameters() == 643 + 2 * 8);
  std::vector<std::string> names;
  for (const auto& p : model.named_parameters()) names.push_back(p.first);
  for (const char* n : {"layers.0.norm1.weight", "layers.0.norm1.bias", "layers.0.norm2.weight",
                        "layers.0.norm2.bias"}) {
    INFO(n);
    CHECK(std::find(names.begin(), names.end(), n) != names.end());
  }
  CHECK(model.summary().find("LayerNorm") != std::string::npos);
  CHECK(model.state_dict().at("layers.0.norm1.bias").to_vector<double>() ==
        std::vector<double>(8, 0.0));
  // Gradients flow through the norms: the input's in float64 by gradcheck, and the biases get
  // one.
  BTCTransformer model64(cfg, gen, kFloat64);
  Generator data(4);
  gradcheck([&](const std::vector<Var>& v) { return model64.forward(v[0]); },
            {Tensor::randn({2, 5, 3}, data, kFloat64)});
  const auto [first, last] = train_on_sines(model);
  INFO("first " << first << " last " << last);
  CHECK(last < 0.2 * first);
  const auto& bias = dynamic_cast<const LayerNorm&>(*model.layers[0]->norm1).bias();
  CHECK(testing::max_abs_diff(bias.value(), Tensor::zeros({8})) > 0.0);
}
