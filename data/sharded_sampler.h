// Sharding an epoch's windows across the ranks of a data-parallel run.
//
// Every rank computes the same global order for the epoch (the loader's permutation, a pure
// function of (seed, epoch), so no communication is needed) and takes every world-th entry
// starting at its rank:
//
//   global order  o0 o1 o2 o3 o4 o5 o6 o7 o8 o9     (10 windows, world 3)
//   rank 0        o0       o3       o6              shard_of(order, 0, 3, Drop)
//   rank 1           o1       o4       o7
//   rank 2              o2       o5       o8        o9 dropped: shards must be equal
//
// Rank-strided (not contiguous blocks) so that batch j of every rank, taken together, is
// exactly batch j of a one-GPU run whose batch is world times larger:
//   rank r, batch j, item i  =  order[(j * B + i) * world + r]
//   => the union over r is order[j * B * world, (j + 1) * B * world)
// That is what makes the loss curve of N GPUs that of one GPU at the same global batch.
//
// Equal length: every rank must run the same number of steps (a rank with one batch more would
// wait forever in its all-reduce). Drop leaves out the last n % world windows of the order
// (different ones each epoch, since the order changes); Pad repeats the first windows of the
// order to fill the last row, as PyTorch's DistributedSampler does (a few windows count twice).
#pragma once

#include <cstdint>
#include <vector>

namespace mt::data {

enum class ShardTail { Drop, Pad };

// Windows per rank for n windows over `world` ranks.
int64_t shard_length(int64_t n, int world, ShardTail tail);

// Rank `rank`'s entries of `global_order` (see above). An Error for a bad rank or world, or Pad
// of an empty order.
std::vector<int64_t> shard_of(const std::vector<int64_t>& global_order, int rank, int world,
                              ShardTail tail);

// The shard of one epoch: the global order is shuffled_order(n, seed, epoch) (data/windows.h)
// when shuffle, else 0 .. n-1.
class ShardedSampler {
 public:
  ShardedSampler(int64_t n, uint64_t seed, bool shuffle, int rank, int world,
                 ShardTail tail = ShardTail::Drop);
  std::vector<int64_t> epoch_indices(int64_t epoch) const;
  int64_t size() const { return shard_length(n_, world_, tail_); }
  // Full batches of `batch` windows per rank and epoch (the tail of a shard is dropped, as the
  // training loader's drop_last does).
  int64_t batches(int64_t batch) const { return size() / batch; }

 private:
  int64_t n_;
  uint64_t seed_;
  bool shuffle_;
  int rank_, world_;
  ShardTail tail_;
};

}  // namespace mt::data
