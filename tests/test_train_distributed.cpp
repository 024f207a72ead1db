// The trainer as one rank of a data-parallel run, on the CPU: two ranks simulated by threads
// (tests/thread_comm.h stands in for NCCL) train the tiny model on the synthetic series and are
// checked against one process at the same global batch, through the whole Trainer: sharded
// loaders, bucketed averaging, the loss logged as the mean over the ranks, rank 0 alone writing
// the run folder, and a checkpoint of 2 ranks resumed by 1. The loaders' sharding is checked
// against one loader at the global batch. The same code on 2 GPUs over NCCL is run by
// dev/dp_check.sh (docs/distributed.md).
#include <exception>
#include <thread>

#include "data/loader.h"
#include "tests/test_util.h"
#include "tests/thread_comm.h"
#include "tests/train_fixtures.h"
#include "training/checkpoint.h"
#include "training/run_log.h"

using namespace mt;
using namespace mt::training;
using namespace mt::testing;

#define DIST_TEST_CASE(name) TEST_CASE(name* doctest::test_suite("distributed"))

namespace {

// Runs `body(rank, comm)` on `world` threads, one rank each; rethrows the first failure.
template <typename Body>
void run_ranks(int world, Body body) {
  ThreadGroup group(world);
  std::vector<std::exception_ptr> errors(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      omp_set_num_threads(1);  // each thread is a rank; the tiny model wants no team
      try {
        body(r, std::make_shared<ThreadComm>(group, r));
      } catch (...) {
        errors[static_cast<size_t>(r)] = std::current_exception();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const std::exception_ptr& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

std::vector<double> weights_of(Trainer& t) {
  std::vector<double> out;
  for (const Var& p : t.model().parameters()) {
    for (double x : p.value().to_vector<double>()) out.push_back(x);
  }
  return out;
}

double max_rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::abs(a[i] - b[i]) / std::max(std::abs(b[i]), 1e-3));
  }
  return worst;
}

// |a - b| / |b| over all the weights (float32 rounding in another order: ~1e-6 after 12 steps;
// a gradient twice or half as large: ~1e-2).
double norm_rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double diff = 0, ref = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    ref += b[i] * b[i];
  }
  return std::sqrt(diff / ref);
}

// Dropout off: the ranks' masks are their own streams (trainer.cpp rank_seed), so only without
// dropout is the arithmetic of 2 x 2 windows that of 1 x 4. SGD without clipping: its update is
// linear in the gradient, so a gradient summed instead of averaged, or a window missing, shows
// in the weights (Adam's update and the clip are nearly blind to the gradient's scale).
std::vector<std::string> dp_sets(std::vector<std::string> extra = {}) {
  for (const char* s : {"model.attn_dropout=0", "optimizer.name=sgd", "optimizer.lr=0.05",
                        "optimizer.momentum=0.9", "optimizer.weight_decay=0", "trainer.clip=0"}) {
    extra.push_back(s);
  }
  return extra;
}

// The ranks' configs: batch 2 per rank.
std::vector<std::string> rank_sets(std::vector<std::string> extra = {}) {
  extra.push_back("trainer.batch_size=2");
  return dp_sets(extra);
}

struct RankRun {
  TrainResult result;
  std::vector<double> weights;
};

// Two ranks of batch 2 each (global batch 4) in `dir`; rank r's result in runs[r].
std::vector<RankRun> train_two_ranks(const std::string& dir, std::vector<std::string> extra = {}) {
  std::vector<RankRun> runs(2);
  run_ranks(2, [&](int r, std::shared_ptr<GradComm> comm) {
    RankSetup ranks{comm};
    auto t =
        Trainer::create(tiny_config(dir, rank_sets(extra)), "dp", synthetic_data(7, 0, 2), &ranks);
    CHECK(t->world() == 2);
    runs[static_cast<size_t>(r)].result = t->fit();
    runs[static_cast<size_t>(r)].weights = weights_of(*t);
  });
  return runs;
}

}  // namespace

DIST_TEST_CASE("sharded BatchLoader: the ranks' batch j together is batch j at the global batch") {
  const int64_t rows = 300, T = 8;
  std::vector<float> v(static_cast<size_t>(rows * data::kFeatures));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  const Tensor series = Tensor::from_vector(v, {rows, data::kFeatures});
  std::vector<int64_t> starts;
  for (int64_t s = 0; s + T <= rows; s += 5) starts.push_back(s);  // 59 windows
  const auto ds = data::WindowDataset::from_series(series, starts, T);
  const int world = 3;
  const int64_t B = 4;
  data::BatchLoader whole(ds, B * world, /*seed=*/11, /*shuffle=*/true, Device::cpu(), true);
  std::vector<std::unique_ptr<data::BatchLoader>> ranks;
  for (int r = 0; r < world; ++r) {
    ranks.push_back(
        std::make_unique<data::BatchLoader>(ds, B, 11, true, Device::cpu(), /*drop_last=*/true));
    ranks.back()->set_shard(r, world);
    // 59 windows: 19 per rank (2 dropped), 4 batches of 4; the whole loader: 4 batches of 12.
    CHECK(ranks.back()->size() == 4);
  }
  CHECK(whole.size() == 4);
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    whole.start_epoch(epoch);
    for (auto& l : ranks) l->start_epoch(epoch);
    Tensor big, part;
    while (whole.next(big)) {
      for (int r = 0; r < world; ++r) {
        REQUIRE(ranks[static_cast<size_t>(r)]->next(part));
        // rank r, item i  =  item i * world + r of the global batch
        for (int64_t i = 0; i < B; ++i) {
          CHECK(testing::max_abs_diff(part.narrow(0, i, 1), big.narrow(0, i * world + r, 1)) == 0);
        }
      }
    }
    for (auto& l : ranks) CHECK_FALSE(l->next(part));
  }
  data::BatchLoader l(ds, 30, 11, true, Device::cpu(), true);
  CHECK_THROWS_WITH_TEXT(l.set_shard(0, 2), "not one batch of 30");
  CHECK_THROWS_WITH_TEXT(l.set_shard(2, 2), "rank 2 of 2");
}

DIST_TEST_CASE("trainer on 2 simulated ranks: the loss curve and weights of 1 process") {
  OneThread one;
  TempDir tmp("mt_test_train_dp");
  auto single = Trainer::create(tiny_config(tmp.sub("one"), dp_sets()), "one", synthetic_data(7));
  const TrainResult a = single->fit();
  const std::vector<RankRun> runs = train_two_ranks(tmp.sub("two"));
  for (const RankRun& run : runs) {
    CHECK(run.result.stop_reason == "finished");
    CHECK(run.result.steps == a.steps);
  }
  // Identical weights on the ranks (the trainer also checks this itself at the end of fit).
  CHECK(runs[0].weights == runs[1].weights);
  // The same global batch: float32 sums in another order (the gradient mean over 2 x 2 windows
  // against 1 x 4, the logged loss as a mean of means), nothing else.
  const std::vector<double> la = losses_of(a), lb = losses_of(runs[0].result);
  REQUIRE(la.size() == lb.size());
  CHECK(max_rel_diff(lb, la) < 1e-5);
  CHECK(norm_rel_diff(runs[0].weights, weights_of(*single)) < 1e-5);
  REQUIRE(runs[0].result.val_losses.size() == a.val_losses.size());
  CHECK(max_rel_diff(runs[0].result.val_losses, a.val_losses) < 1e-5);
  // Rank 0 alone wrote the log: one line per step and one per epoch, no duplicates.
  int64_t train_lines = 0, epoch_lines = 0;
  for (const auto& rec : read_run_log(tmp.sub("two") + "/metrics.jsonl")) {
    train_lines += rec.at("kind") == "train";
    epoch_lines += rec.at("kind") == "epoch";
  }
  CHECK(train_lines == a.steps);
  CHECK(epoch_lines == 2);
}

DIST_TEST_CASE("trainer: a checkpoint of 2 ranks resumes on 1 at the same global position") {
  OneThread one;
  TempDir tmp("mt_test_train_dp_resume");
  auto single = Trainer::create(tiny_config(tmp.sub("one"), dp_sets()), "one", synthetic_data(7));
  single->fit();
  // 2 ranks stop after 3 of the epoch's 6 steps: 12 of its 24 windows consumed.
  const std::string dir = tmp.sub("two");
  const std::vector<RankRun> runs = train_two_ranks(dir, {"trainer.max_steps=3"});
  CHECK(runs[0].result.stop_reason == "max_steps");
  const Checkpoint ck = load_checkpoint(dir + "/checkpoints/last");
  CHECK(ck.state.world == 2);
  CHECK(ck.state.samples_in_epoch == 12);
  CHECK(ck.state.batch_in_epoch == 3);
  // One process of batch 4 continues at its batch 3: the same windows as the 1-process run.
  auto resumed =
      Trainer::resume(dir, {"trainer.max_steps=0", "trainer.batch_size=4"}, synthetic_data(7));
  CHECK(resumed->state().batch_in_epoch == 3);
  const TrainResult r = resumed->fit();
  CHECK(r.stop_reason == "finished");
  CHECK(r.steps == 12);
  CHECK(norm_rel_diff(weights_of(*resumed), weights_of(*single)) < 1e-5);
}
