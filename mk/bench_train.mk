# make bench-train: the seed model's training step, ours beside PyTorch eager and torch.compile
# in the same session (GPU machine; docs/benchmarks.md has the figures).
.PHONY: bench-train
bench-train: all
	$(BUILD)/bin/bench_train
	@if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then \
	  python3 scripts/bench_train_torch.py; \
	else echo "bench-train: PyTorch with CUDA not found; skipping its side"; fi
