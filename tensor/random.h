// Generator: a seed and an offset into the Philox stream (base/philox.h).
//
// Each draw (a rand/randn call, a dropout mask) takes the current offset as its Philox `stream`
// and then advances the offset by one, so successive draws are independent, and a draw is
// reproducible from (seed, offset) alone on any device. Saving these two numbers in a
// checkpoint restores the exact random sequence.
#pragma once

#include <cstdint>

namespace mt {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}

  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) {
    seed_ = seed;
    offset_ = offset;
  }
  // Returns the stream id for the next draw and advances.
  uint64_t next_stream() { return offset_++; }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

// The framework-wide default generator (seeded by manual_seed; 0 until then).
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace mt
