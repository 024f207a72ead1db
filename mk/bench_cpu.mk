# make bench-cpu: GFLOP/s of the CPU GEMM at the model's shapes, single-thread and all threads,
# beside a naive loop (apps/bench_cpu.cpp). Figures are kept in docs/benchmarks.md.
bench-cpu: $(DEPS_STAMP) $(BUILD)/bin/bench_cpu
	$(BUILD)/bin/bench_cpu $(BENCH_ARGS)
