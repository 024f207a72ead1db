// The training step as one CUDA graph (trainer.cuda_graph): captured once, replayed every step.
//
// A step of the seed model queues 322 kernels, copies and memsets (one micro-batch a step);
// launched one by one, the GPU idles between the short ones while the host prepares the next.
// Captured into a graph (cuda/graph.h), the whole step (every micro-batch's forward and backward,
// the clip, the optimizer) is one launch.
//
//   StepGraph graph(generator, device);
//   for each step: copy the batches into the step's input tensors (same storage every step),
//                  graph.run([&] { ...the step, reading those tensors... });
//
// run() runs the step eagerly the first time (a warm-up: the optimizer's moments, the GEMM plans,
// the cuBLASLt workspace and the kernels' settings are made then, outside the graph), captures it
// the second time and replays it then and at every later call. What the replays cannot redo, it
// redoes on the host:
//   - the dropout streams: the step's draws read a device-side base (Generator::device_base),
//     set to the generator's offset before each replay, which then advances the offset by the
//     step's draws: each replay draws new masks, the same ones as eager steps would, and a
//     resumed run (the offset restored from its checkpoint) the same ones again;
//   - parameters_changed(): the optimizer's in-place update marks the bf16 weight copies stale.
// The step must keep every tensor it reads from one step to the next in the same storage
// (parameters, gradients, optimizer state and learning rates are updated in place), never copy
// from or wait for the host, and choose the same branches every step; the tensors it leaves
// behind (a loss) are rewritten by each replay. The scheduler's learning-rate changes reach the
// graph through the optimizer's device-side lr (optim/optimizer.h). drop() forgets the graph
// (to capture again, e.g. after the inputs' shape changed).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace mt::cuda {
class CapturedGraph;
}

namespace mt::training {

class StepGraph {
 public:
  StepGraph(Generator& generator, Device device);
  ~StepGraph();

  // One step: eager (the first call after construction or drop()), captured and replayed (the
  // second), replayed (later). `step` must do the same work every call (see the top).
  void run(const std::function<void()>& step);
  void drop();

  bool captured() const;
  int64_t replays() const { return replays_; }
  uint64_t draws_per_step() const { return draws_; }
  size_t nodes() const;  // kernels, copies and memsets in the graph

 private:
  Generator& generator_;
  Tensor base_;  // int64 [1] on the device: the dropout streams' base of the running replay
  std::unique_ptr<cuda::CapturedGraph> graph_;
  bool warmed_up_ = false;
  uint64_t draws_ = 0;
  int64_t replays_ = 0;
};

}  // namespace mt::training
