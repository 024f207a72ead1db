// Rank-strided shards of an epoch's window order (see data/sharded_sampler.h).
#include "data/sharded_sampler.h"

#include "base/error.h"
#include "data/windows.h"

namespace mt::data {

int64_t shard_length(int64_t n, int world, ShardTail tail) {
  CHECK(world >= 1, "shard_length: world must be >= 1, got {}", world);
  CHECK(n >= 0, "shard_length: n must be >= 0, got {}", n);
  return tail == ShardTail::Drop ? n / world : (n + world - 1) / world;
}

std::vector<int64_t> shard_of(const std::vector<int64_t>& global_order, int rank, int world,
                              ShardTail tail) {
  CHECK(world >= 1 && rank >= 0 && rank < world,
        "shard_of: rank {} of world {} (need 0 <= rank "
        "< world)",
        rank, world);
  const int64_t n = static_cast<int64_t>(global_order.size());
  CHECK(tail == ShardTail::Drop || n > 0, "shard_of: cannot pad an empty order");
  const int64_t length = shard_length(n, world, tail);
  std::vector<int64_t> shard(static_cast<size_t>(length));
  for (int64_t k = 0; k < length; ++k) {
    // Pad: positions past the end wrap to the start of the order (at most world - 1 of them).
    const int64_t pos = (k * world + rank) % n;
    shard[static_cast<size_t>(k)] = global_order[static_cast<size_t>(pos)];
  }
  return shard;
}

ShardedSampler::ShardedSampler(int64_t n, uint64_t seed, bool shuffle, int rank, int world,
                               ShardTail tail)
    : n_(n), seed_(seed), shuffle_(shuffle), rank_(rank), world_(world), tail_(tail) {
  CHECK(world >= 1 && rank >= 0 && rank < world, "ShardedSampler: rank {} of world {}", rank,
        world);
  CHECK(n >= 0, "ShardedSampler: n must be >= 0, got {}", n);
}

std::vector<int64_t> ShardedSampler::epoch_indices(int64_t epoch) const {
  std::vector<int64_t> order;
  if (shuffle_) {
    order = shuffled_order(n_, seed_, static_cast<uint64_t>(epoch));
  } else {
    order.resize(static_cast<size_t>(n_));
    for (int64_t i = 0; i < n_; ++i) order[static_cast<size_t>(i)] = i;
  }
  return shard_of(order, rank_, world_, tail_);
}

}  // namespace mt::data
