# make bench-attention: our FlashAttention kernels beside PyTorch's SDPA (flash, cuDNN) at the
# model's shapes, in one run on the GPU machine. Results go in docs/benchmarks.md (Attention).
ATTN_BENCH_JSON ?= $(BUILD)/attention_bench.json

bench-attention: $(BUILD)/bin/bench_attention
	$(BUILD)/bin/bench_attention --json $(ATTN_BENCH_JSON)
	python3 scripts/bench_attention_torch.py --ours $(ATTN_BENCH_JSON) --json $(BUILD)/attention_bench_all.json
