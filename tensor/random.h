// Generator: a seed and an offset into the Philox stream (base/philox.h).
//
// Each draw (a rand/randn call, a dropout mask) takes the current offset as its Philox `stream`
// and then advances the offset by one, so successive draws are independent, and a draw is
// reproducible from (seed, offset) alone on any device. Saving these two numbers in a
// checkpoint restores the exact random sequence.
#pragma once

#include <cstdint>

#include "base/error.h"

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

  // Draws recorded into a CUDA graph (training/step_graph.h). A replay re-runs the recorded
  // kernels with the arguments they had, so a stream id passed as an argument would repeat at
  // every replay. Between begin_device_streams(base) and end_device_streams(), next_stream()
  // numbers the draws 0, 1, ... and device_base() is `base`, device memory that the kernels add
  // to the id they are given (ops::AttentionOptions::offset_base) and that each replay first
  // sets to offset(): the replay's draws are then the ids eager calls would have had.
  // end_device_streams() returns how many draws the recorded work makes (what each replay must
  // advance() the offset by) and restores the offset of before the capture. A draw that does
  // not read device_base() (a host-generated tensor) must not happen in between.
  void begin_device_streams(const uint64_t* base) {
    MT_CHECK(device_base_ == nullptr && base != nullptr, "Generator::begin_device_streams: {}",
             base == nullptr ? "the base is null" : "already recording device streams");
    saved_offset_ = offset_;
    offset_ = 0;
    device_base_ = base;
  }
  uint64_t end_device_streams() {
    const uint64_t draws = offset_;
    offset_ = saved_offset_;
    device_base_ = nullptr;
    return draws;
  }
  const uint64_t* device_base() const { return device_base_; }
  void advance(uint64_t draws) { offset_ += draws; }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
  const uint64_t* device_base_ = nullptr;  // see begin_device_streams
  uint64_t saved_offset_ = 0;
};

// The framework-wide default generator (seeded by manual_seed; 0 until then).
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace mt
