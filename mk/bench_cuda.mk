.PHONY: bench-cuda
# make bench-cuda: bandwidth and TFLOP/s of the CUDA kernels (apps/bench_cuda.cpp) on the GPU.
# Figures and the device they came from are kept in docs/cuda_backend.md.
bench-cuda: $(DEPS_STAMP) $(BUILD)/bin/bench_cuda
	$(BUILD)/bin/bench_cuda $(BENCH_ARGS)
