# make profile: a short GPU training run under Nsight Systems, with the CUDA API, the kernels and
# the framework's NVTX ranges (forward, backward, optimizer, one per op) on one timeline.
# Output: $(PROFILE_OUT).nsys-rep, opened with nsys-ui, or summarized with `nsys stats`.
# make profile-table: the built-in per-range time table instead (trainer.profile_steps), no
# Nsight needed: PROFILE_STEPS steps after a warm-up step, on PROFILE_DEVICE (cuda or cpu).
# docs/profiling.md explains how to read both and how to profile one kernel with ncu.
# Both run the step kernel by kernel (trainer.cuda_graph off): a replayed CUDA graph opens no
# NVTX ranges, so only the captured step would show them.
PROFILE_CONFIG ?= models/configs/tiny.json
PROFILE_STEPS ?= 30
PROFILE_OUT ?= $(BUILD)/profile/train
PROFILE_DEVICE ?= cuda

.PHONY: profile-table

profile: all
	@if command -v nsys >/dev/null 2>&1; then \
	  mkdir -p $(dir $(PROFILE_OUT)) && \
	  nsys profile --trace=cuda,nvtx,osrt --force-overwrite=true -o $(PROFILE_OUT) \
	    $(BUILD)/bin/train --config $(PROFILE_CONFIG) --set trainer.device=cuda \
	    --set trainer.max_steps=$(PROFILE_STEPS) --set trainer.cuda_graph=false && \
	  nsys stats --report nvtx_sum,cuda_gpu_kern_sum $(PROFILE_OUT).nsys-rep | head -60; \
	else \
	  echo "make profile: nsys (Nsight Systems) is not on the PATH; install the CUDA toolkit's"; \
	  echo "nsight-systems package, or see docs/profiling.md for running it by hand."; \
	  echo "make profile-table prints a per-range time table with no Nsight at all."; \
	fi

profile-table: all $(DATA)/manifest.json
	$(BUILD)/bin/train --config $(PROFILE_CONFIG) --set data.dir=$(DATA) \
	  --set trainer.device=$(PROFILE_DEVICE) --set trainer.profile_steps=$(PROFILE_STEPS) \
	  --set trainer.max_steps=$$(( $(PROFILE_STEPS) + 1 )) --set trainer.progress=none
