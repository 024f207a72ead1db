# minitensor build. `make` builds the library and the apps, `make test` runs every test suite.
#
# Sources are found by wildcard: a new .cpp in a library folder, a new apps/<name>.cpp or a new
# tests/test_*.cpp is picked up with no edit here. With nvcc on the PATH (or CUDA=1) the CUDA
# backend (cuda/*.cu) is compiled in; CUDA=0 forces a CPU-only build.
#
#   make                 library + apps into $(BUILD) (apps as $(BUILD)/bin/<name>)
#   make test            build and run the test binary (doctest)
#   make train           prepare data if needed, then train (see README)
#   make deps            install missing system packages (docker/install-deps.sh)
#   CUDA=0|1             force the CUDA backend off or on
#   BUILD=dir            build folder (default: build, or build-cpu / build-cuda, see below)
#   V=1                  print the full compiler command lines
#   JOBS=N / -jN         parallel jobs (default: every core)
#
# One build folder per kind of build, so that switching CUDA= never reuses objects of the other
# kind: build/ holds this machine's default build (CUDA when nvcc is found, else CPU-only);
# CUDA=0 on a machine with nvcc builds into build-cpu/, CUDA=1 on one without into build-cuda/.
# A folder also remembers the flags it was built with ($(BUILD)/.config) and rebuilds when they
# change (CXXFLAGS=..., a newly found NCCL).

# Every core unless the command line says otherwise: a -jN given to make wins over this one.
# Only the top-level make sets it; sub-makes share its job slots.
JOBS ?= $(shell nproc 2>/dev/null || echo 1)
ifeq ($(MAKELEVEL),0)
  MAKEFLAGS += -j$(JOBS)
endif

NVCC ?= $(shell command -v nvcc 2>/dev/null || (test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc))
CUDA_FOUND := $(if $(NVCC),1,0)
CUDA ?= $(CUDA_FOUND)
ifeq ($(CUDA),$(CUDA_FOUND))
  BUILD ?= build
else ifeq ($(CUDA),0)
  BUILD ?= build-cpu
else
  BUILD ?= build-cuda
endif

# One short line per compiled file ("CXX tensor/tensor.cpp"); V=1 prints the commands instead.
ifeq ($(V),1)
  quiet =
else
  quiet = @printf '  %-5s %s\n' '$(1)' '$(2)';
endif
CXX ?= g++
ifeq ($(CXX),c++)
  CXX := g++
endif

LIB_DIRS := base tensor cuda ops autograd models optim data training
CPPFLAGS := -I. -DFMT_HEADER_ONLY -MMD -MP
CXXFLAGS ?= -O2 -g1
CXXFLAGS += -std=c++17 -Wall -Wextra -fopenmp $(ARCH_FLAGS)
ARCH_FLAGS ?= -march=native
LDLIBS := -lz -fopenmp -lpthread

LIB_SRCS := $(wildcard $(addsuffix /*.cpp,$(LIB_DIRS)))
CU_SRCS :=
ifeq ($(CUDA),1)
  CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
  CPPFLAGS += -DMT_WITH_CUDA -isystem $(CUDA_HOME)/include
  CU_SRCS := $(wildcard cuda/*.cu)
  # sm_90 machine code for the H100/H200, plus compute_90 PTX so newer GPUs can JIT it.
  # Kernels that need wgmma ask for sm_90a in their own file (see cuda/README).
  NVCC_ARCH ?= -gencode=arch=compute_90,code=sm_90 -gencode=arch=compute_90,code=compute_90
  NVCCFLAGS ?= -O3 -lineinfo
  NVCCFLAGS += -std=c++17 $(NVCC_ARCH) --expt-relaxed-constexpr -Xcompiler -Wall,-Wextra,-fopenmp \
               -Wno-deprecated-gpu-targets
  LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcudart
endif

LIB_OBJS := $(LIB_SRCS:%.cpp=$(BUILD)/obj/%.o) $(CU_SRCS:%.cu=$(BUILD)/obj/%.cu.o)
LIB := $(BUILD)/libminitensor.a

APP_SRCS := $(wildcard apps/*.cpp)
APPS := $(APP_SRCS:apps/%.cpp=$(BUILD)/bin/%)
TEST_SRCS := $(wildcard tests/*.cpp)
TEST_OBJS := $(TEST_SRCS:%.cpp=$(BUILD)/obj/%.o)
TEST_BIN := $(BUILD)/bin/tests

DEPS_STAMP := $(BUILD)/.deps-ok
CONFIG_STAMP := $(BUILD)/.config

.PHONY: all deps test train data plots bench-cpu bench-data bench-attention profile docker clean format
# Keep the apps' object files (make would delete them as intermediates and relink every time).
.SECONDARY:
all: $(DEPS_STAMP) $(LIB) $(APPS)

# The install script runs once per build folder (and again when it changes).
$(DEPS_STAMP): docker/install-deps.sh
	@bash docker/install-deps.sh
	@mkdir -p $(BUILD) && touch $@
deps:
	@bash docker/install-deps.sh

$(BUILD)/obj/%.o: %.cpp $(CONFIG_STAMP) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(call quiet,CXX,$<)$(CXX) $(CPPFLAGS) $(CXXFLAGS) -c $< -o $@

$(BUILD)/obj/%.cu.o: %.cu $(CONFIG_STAMP) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(call quiet,NVCC,$<)$(NVCC) $(CPPFLAGS) $(NVCCFLAGS) -c $< -o $@

# Hopper-only kernels (wgmma) exist in the architecture-specific target sm_90a alone, whose code
# runs on compute capability 9.0 and nothing else: files named cuda/*_sm90.cu compile for it in
# place of NVCC_ARCH (even one given on the command line); their launchers check the device.
NVCC_ARCH_SM90A := -gencode=arch=compute_90a,code=sm_90a
$(BUILD)/obj/cuda/%_sm90.cu.o: override NVCC_ARCH := $(NVCC_ARCH_SM90A)

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@rm -f $@
	$(call quiet,AR,$@)ar rcs $@ $^

$(BUILD)/bin/%: $(BUILD)/obj/apps/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(call quiet,LD,$@)$(CXX) $(CXXFLAGS) $< $(LIB) $(LDLIBS) -o $@

# In test files CHECK and FAIL are doctest's (see base/error.h).
$(TEST_OBJS): CPPFLAGS += -DMT_NO_SHORT_CHECK

$(TEST_BIN): $(TEST_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(call quiet,LD,$@)$(CXX) $(CXXFLAGS) $(TEST_OBJS) $(LIB) $(LDLIBS) -o $@

# Tests run from the repository root so that ../shared/data is found when present.
# TEST_ARGS passes doctest options, e.g. TEST_ARGS='-ts=tensor' or TEST_ARGS='-tc=*adamw*'.
test: all $(TEST_BIN)
	$(TEST_BIN) $(TEST_ARGS)

-include mk/*.mk

# The flags this folder is built with, rewritten only when they change: every object depends on
# it. (After mk/*.mk, which add NCCL's flags; never under make -n, which must change nothing.)
BUILD_CONFIG := CUDA=$(CUDA) CPPFLAGS=$(CPPFLAGS) CXXFLAGS=$(CXXFLAGS) NVCCFLAGS=$(NVCCFLAGS) \
                NVCC_ARCH=$(NVCC_ARCH) LDLIBS=$(LDLIBS)
ifeq ($(findstring n,$(firstword -$(MAKEFLAGS))),)
  $(shell mkdir -p $(BUILD) && { echo '$(BUILD_CONFIG)' | cmp -s - $(CONFIG_STAMP) || \
                                 echo '$(BUILD_CONFIG)' > $(CONFIG_STAMP); })
endif

clean:
	rm -rf $(BUILD)

format:
	clang-format -i $$(git ls-files '*.h' '*.cpp' '*.cu' '*.cuh')

-include $(LIB_OBJS:.o=.d) $(TEST_OBJS:.o=.d) $(APP_SRCS:%.cpp=$(BUILD)/obj/%.d)
