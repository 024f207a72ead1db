# NCCL for data-parallel training (training/distributed.h, docs/distributed.md).
#
# Looked for in the CUDA toolkit first (/usr/local/cuda/include/nccl.h), then in PyTorch's
# nvidia-nccl wheel (site-packages/nvidia/nccl/{include,lib}), or where NCCL_HOME points. When
# nccl.h is found, MT_WITH_NCCL is defined and the library linked; otherwise "devices" > 1 is an
# Error at run time and everything else builds as before. NCCL=0 forces it off.
#
# Appending to CPPFLAGS and LDLIBS here works although the main Makefile sets them first:
# recipes expand their variables only when they run, after every makefile has been read.
ifeq ($(CUDA),1)
ifneq ($(NCCL),0)
  ifeq ($(NCCL_HOME),)
    NCCL_HOME := $(if $(wildcard $(CUDA_HOME)/include/nccl.h),$(CUDA_HOME))
  endif
  ifeq ($(NCCL_HOME),)
    # Only asked when the toolkit has none: importing Python costs ~50 ms per make.
    NCCL_WHEEL := $(shell python3 -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' \
                    2>/dev/null)
    NCCL_HOME := $(if $(wildcard $(NCCL_WHEEL)/include/nccl.h),$(NCCL_WHEEL))
  endif
  ifneq ($(NCCL_HOME),)
    NCCL_LIB := $(firstword $(wildcard $(NCCL_HOME)/lib64/libnccl.so.2 \
                     $(NCCL_HOME)/lib/libnccl.so.2))
    ifneq ($(NCCL_LIB),)
      # The wheel ships only libnccl.so.2 (no libnccl.so link), hence -l:libnccl.so.2.
      CPPFLAGS += -DMT_WITH_NCCL $(if $(filter $(CUDA_HOME),$(NCCL_HOME)),,-isystem $(NCCL_HOME)/include)
      LDLIBS += -L$(patsubst %/,%,$(dir $(NCCL_LIB))) -Wl,-rpath,$(patsubst %/,%,$(dir $(NCCL_LIB))) -l:libnccl.so.2
    endif
  endif
endif
endif

.PHONY: nccl-info
nccl-info:
	@echo "NCCL_HOME=$(NCCL_HOME) lib=$(NCCL_LIB)"
	@echo "CPPFLAGS=$(CPPFLAGS)"
	@echo "LDLIBS=$(LDLIBS)"
