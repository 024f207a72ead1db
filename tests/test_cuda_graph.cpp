// CUDA graphs (cuda/graph.h) and the captured training step (training/step_graph.h): the caching
// allocator keeps a capture's memory for its replays, host copies are refused inside a capture,
// and the attention's dropout draws a new mask at every replay, the very masks eager calls with
// the same generator offsets draw, so that a restored generator (a resumed run) replays them.
#include <string>
#include <vector>

#include "cuda/graph.h"
#include "cuda/runtime.h"
#include "ops/attention.h"
#include "ops/dropout.h"
#include "ops/elementwise.h"
#include "tests/test_util.h"
#include "training/step_graph.h"

using namespace mt;

namespace {

struct AttentionCase {
  int64_t B, T, H, D;
  DType dtype;
  bool deterministic;
};

// Forward and backward of causal attention with dropout, the mask's stream taken from `gen` as
// the model takes it (models/attention.cpp).
struct AttentionStep {
  Tensor q, k, v, dout;
  bool deterministic = false;
  Tensor out, dq, dk, dv;

  void run(Generator& gen) {
    ops::AttentionOptions o;
    o.causal = true;
    o.dropout_p = 0.2f;
    o.deterministic = deterministic;
    o.seed = gen.seed();
    o.offset = gen.next_stream();
    o.offset_base = gen.device_base();
    Tensor lse;
    out = ops::attention_forward(q, k, v, o, &lse);
    const ops::AttentionGrads g = ops::attention_backward(q, k, v, out, lse, dout, o);
    dq = g.dq;
    dk = g.dk;
    dv = g.dv;
  }
};

std::vector<Tensor> results(const AttentionStep& s) {
  return {s.out.clone(), s.dq.clone(), s.dk.clone(), s.dv.clone()};
}

void check_same(const std::vector<Tensor>& a, const std::vector<Tensor>& b, const char* what) {
  const char* names[] = {"out", "dq", "dk", "dv"};
  for (size_t i = 0; i < a.size(); ++i) {
    INFO(what << ": " << names[i]);
    CHECK(testing::max_abs_diff(a[i], b[i]) == 0);
  }
}

}  // namespace

TEST_SUITE("cuda") {
  CUDA_TEST_CASE("cuda: graph: a replay reruns the captured kernels on updated inputs") {
    Tensor x = Tensor::full({1000}, 2.0, kFloat32, Device::cuda());
    Tensor y;
    const size_t before = cuda::memory_stats().allocated;
    {
      cuda::CapturedGraph graph;
      graph.begin();
      CHECK(cuda::capturing());
      y = ops::mul_scalar(ops::add(x, x), 3.0);  // the temporary x + x is freed inside
      graph.end();
      CHECK_FALSE(cuda::capturing());
      CHECK(graph.ready());
      CHECK(graph.nodes() >= 2);
      // Nothing ran yet: the capture only records.
      graph.replay();
      CHECK(y.to_vector<float>()[999] == 12.0f);
      x.fill_(5.0);  // inputs change in place; the replay reads them
      graph.replay();
      const std::vector<float> got = y.to_vector<float>();
      CHECK(got[0] == 30.0f);
      CHECK(got[999] == 30.0f);
      // The graph holds the temporary's block too, free or not, for its replays.
      CHECK(graph.memory_bytes() >= 2 * 4096);
      CHECK(cuda::memory_stats().allocated >= before + graph.memory_bytes());
      y = Tensor();
    }
    // The graph's memory is back in the general cache.
    CHECK(cuda::memory_stats().allocated == before);
  }

  CUDA_TEST_CASE("cuda: graph: host copies inside a capture are refused, and the capture ends") {
    Tensor x = Tensor::full({16}, 1.0, kFloat32, Device::cuda());
    {
      cuda::CapturedGraph graph;
      graph.begin();
      std::string message;
      try {
        (void)Tensor::from_vector<float>({1, 2}, {2}).to(Device::cuda());
      } catch (const Error& e) {
        message = e.what();
      }
      graph.abort();
      CHECK(message.find("copy_host_to_device: not allowed while a CUDA graph is being captured") !=
            std::string::npos);
      CHECK_FALSE(cuda::capturing());
      CHECK_FALSE(graph.ready());
      CHECK_THROWS_WITH_TEXT(graph.replay(), "nothing captured");
    }
    // The stream works as before.
    CHECK(ops::add(x, x).to_vector<float>()[3] == 2.0f);
  }

  CUDA_TEST_CASE(
      "cuda: graph: each replay draws new dropout masks, a restored generator the same") {
    // D = 8 (the seed model's kernels: the D = 8 forward, the single-pass dK/dV), D = 16 with
    // the deterministic backward (the general forward and the dQ kernel), D = 64, and float32
    // (the exact kernels).
    const std::vector<AttentionCase> cases = {{2, 130, 3, 8, kBFloat16, false},
                                              {1, 77, 2, 16, kBFloat16, true},
                                              {1, 70, 2, 64, kBFloat16, false},
                                              {2, 33, 2, 8, kFloat32, false}};
    for (const AttentionCase& c : cases) {
      CAPTURE(c.D);
      CAPTURE(std::string(dtype_name(c.dtype)));
      const Shape shape{c.B, c.T, c.H, c.D};
      AttentionStep step;
      step.q = testing::random_uniform(shape, 1).to(c.dtype).to(Device::cuda());
      step.k = testing::random_uniform(shape, 2).to(c.dtype).to(Device::cuda());
      step.v = testing::random_uniform(shape, 3).to(c.dtype).to(Device::cuda());
      step.dout = testing::random_uniform(shape, 4).to(c.dtype).to(Device::cuda());
      step.deterministic = c.deterministic;

      // Eager calls at streams 5, 6, 7: the reference.
      std::vector<std::vector<Tensor>> eager;
      Generator ref_gen(99);
      ref_gen.set_state(99, 5);
      for (int i = 0; i < 3; ++i) {
        step.run(ref_gen);
        eager.push_back(results(step));
      }
      // The masks differ from stream to stream.
      CHECK(testing::max_abs_diff(eager[1][0], eager[2][0]) > 0);

      Generator gen(99);
      gen.set_state(99, 5);
      training::StepGraph graph(gen, Device::cuda());
      std::vector<std::vector<Tensor>> replayed;
      for (int i = 0; i < 3; ++i) {  // eager warm-up, capture + replay, replay
        graph.run([&] { step.run(gen); });
        replayed.push_back(results(step));
      }
      CHECK(graph.captured());
      CHECK(graph.replays() == 2);
      CHECK(graph.draws_per_step() == 1);
      CHECK(gen.offset() == 8);
      check_same(replayed[0], eager[0], "the warm-up step");
      check_same(replayed[1], eager[1], "the first replay");
      check_same(replayed[2], eager[2], "the second replay");

      // A resumed run: the generator's offset set back replays the masks of that offset.
      gen.set_state(99, 6);
      graph.run([&] { step.run(gen); });
      check_same(results(step), eager[1], "a replay after restoring the offset");
    }
  }

  CUDA_TEST_CASE("cuda: graph: a dropout stream passed by value is refused inside a capture") {
    // Baked into the graph, it would give every replay the captured call's mask.
    const Tensor q = testing::random_uniform({1, 16, 1, 8}, 1).to(kBFloat16).to(Device::cuda());
    ops::AttentionOptions o;
    o.dropout_p = 0.1f;
    o.offset = 3;
    std::string attention_error, dropout_error;
    {
      cuda::CapturedGraph graph;
      graph.begin();
      try {
        (void)ops::attention_forward(q, q, q, o, nullptr);
      } catch (const Error& e) {
        attention_error = e.what();
      }
      try {
        (void)ops::dropout_forward(q, 0.5f, 1, 2);
      } catch (const Error& e) {
        dropout_error = e.what();
      }
      graph.abort();
    }
    CHECK(attention_error.find("dropout inside a CUDA graph capture needs options.offset_base") !=
          std::string::npos);
    CHECK(dropout_error.find("not supported inside a CUDA graph capture") != std::string::npos);
    // Outside a capture both run as before.
    CHECK(ops::attention_forward(q, q, q, o, nullptr).shape() == q.shape());
  }

  CUDA_TEST_CASE("cuda: graph: offset_base is refused on the CPU") {
    const Tensor q = testing::random_uniform({1, 4, 1, 8}, 1);
    ops::AttentionOptions o;
    o.dropout_p = 0.1f;
    Tensor base = Tensor::zeros({1}, kInt64, Device::cuda());
    o.offset_base = static_cast<const uint64_t*>(base.raw_data());
    CHECK_THROWS_WITH_TEXT(ops::attention_forward(q, q, q, o, nullptr),
                           "options.offset_base (a device-side dropout stream) needs CUDA tensors");
  }
}  // TEST_SUITE
