// CUDA graphs: the work queued on the compute stream between begin() and end() is recorded once
// (the kernels, copies and memsets with their arguments and addresses) and replayed with one
// launch, so that a step of hundreds of small kernels costs the host one call instead of one
// launch each, and the GPU runs them without waiting for the host in between.
//
//   cuda::CapturedGraph graph;
//   graph.begin();
//   step();            // queues work as usual; nothing runs yet
//   graph.end();
//   graph.replay();    // runs it; again at every replay()
//
// What a replay does not do: anything the host did during the capture (reading the clock,
// advancing a counter, choosing a branch). A replay reads and writes the very addresses the
// capture used: the inputs must be updated in place, and the memory the capture allocated stays
// the graph's (the caching allocator's graph pool, cuda/allocator.cuh) until the graph is
// destroyed. Host copies and synchronizations are refused during a capture (an Error that says
// so), as they could not be replayed. training/step_graph.h builds the training step on this.
//
// Plain C++ declarations (no CUDA header); in a build without CUDA every call is an Error and
// capturing() is false.
#pragma once

#include <cstddef>
#include <memory>

namespace mt::cuda {

// Whether a capture is on (between a CapturedGraph's begin() and end() or abort()).
bool capturing();

class CapturedGraph {
 public:
  CapturedGraph();
  // Waits for the stream (a replay may still run), then frees the graph and its memory.
  ~CapturedGraph();
  CapturedGraph(const CapturedGraph&) = delete;
  CapturedGraph& operator=(const CapturedGraph&) = delete;

  // Starts recording the compute stream (after waiting for the work queued before, which is not
  // part of the graph). One capture at a time, once per CapturedGraph.
  void begin();
  // Ends the recording and instantiates the graph. An Error if the capture was invalidated (a
  // synchronizing call inside it).
  void end();
  // Ends a capture that failed (an exception in the recorded code): drops what was recorded.
  // Does nothing when no capture is on.
  void abort() noexcept;
  // Queues one run of the graph on the compute stream.
  void replay();

  bool ready() const;           // end() succeeded
  size_t memory_bytes() const;  // the device memory the graph's pool holds
  size_t nodes() const;         // the graph's nodes (kernels, copies, memsets)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mt::cuda
