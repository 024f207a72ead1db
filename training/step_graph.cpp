// StepGraph (training/step_graph.h): the eager warm-up, the capture, and each replay's host side.
#include "training/step_graph.h"

#include "autograd/parameter_version.h"
#include "base/error.h"
#include "cuda/graph.h"
#include "cuda/runtime.h"

namespace mt::training {

StepGraph::StepGraph(Generator& generator, Device device) : generator_(generator) {
  CHECK(device.is_cuda(), "StepGraph: CUDA graphs need a CUDA device, got {}", device.str());
  base_ = Tensor::zeros({1}, kInt64, device);
}

StepGraph::~StepGraph() = default;

void StepGraph::drop() {
  graph_.reset();
  warmed_up_ = false;
  draws_ = 0;
}

bool StepGraph::captured() const { return graph_ != nullptr && graph_->ready(); }

size_t StepGraph::nodes() const { return graph_ ? graph_->nodes() : 0; }

void StepGraph::run(const std::function<void()>& step) {
  if (!warmed_up_) {
    step();
    warmed_up_ = true;
    return;
  }
  if (!captured()) {
    // Whatever the step derives from the parameters (the bf16 weight copies) is made inside the
    // graph, so that every replay makes it again from the updated parameters.
    parameters_changed();
    graph_ = std::make_unique<cuda::CapturedGraph>();
    generator_.begin_device_streams(static_cast<const uint64_t*>(base_.raw_data()));
    try {
      graph_->begin();
      step();
      graph_->end();
    } catch (...) {
      graph_->abort();
      generator_.end_device_streams();
      graph_.reset();
      throw;
    }
    draws_ = generator_.end_device_streams();
  }
  // The replay's draws start at the generator's offset (an asynchronous copy, queued before the
  // replay on the same stream).
  const auto offset = static_cast<int64_t>(generator_.offset());
  cuda::copy_host_to_device(base_.raw_data(), &offset, sizeof(offset));
  graph_->replay();
  generator_.advance(draws_);
  parameters_changed();
  ++replays_;
}

}  // namespace mt::training
