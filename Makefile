# minitensor build. `make` builds the library and the apps, `make test` runs every test suite.
#
# Sources are found by wildcard: a new .cpp in a library folder, a new apps/<name>.cpp or a new
# tests/test_*.cpp is picked up with no edit here. With nvcc on the PATH (or CUDA=1) the CUDA
# backend (cuda/*.cu) is compiled in; CUDA=0 forces a CPU-only build.
#
#   make [-j]            library + apps into $(BUILD) (apps as $(BUILD)/bin/<name>)
#   make test            build and run the test binary (doctest)
#   make train           prepare data if needed, then train (see README)
#   make deps            install missing system packages (docker/install-deps.sh)
#   BUILD=dir            build folder (default build)
#   CUDA=0|1             force the CUDA backend off or on

BUILD ?= build
NVCC ?= $(shell command -v nvcc 2>/dev/null || (test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc))
CUDA ?= $(if $(NVCC),1,0)
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

$(BUILD)/obj/%.o: %.cpp | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -c $< -o $@

$(BUILD)/obj/%.cu.o: %.cu | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(NVCC) $(CPPFLAGS) $(NVCCFLAGS) -c $< -o $@

# Hopper-only kernels (wgmma) exist in the architecture-specific target sm_90a alone, whose code
# runs on compute capability 9.0 and nothing else: files named cuda/*_sm90.cu compile for it in
# place of NVCC_ARCH (even one given on the command line); their launchers check the device.
NVCC_ARCH_SM90A := -gencode=arch=compute_90a,code=sm_90a
$(BUILD)/obj/cuda/%_sm90.cu.o: override NVCC_ARCH := $(NVCC_ARCH_SM90A)

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/bin/%: $(BUILD)/obj/apps/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $< $(LIB) $(LDLIBS) -o $@

# In test files CHECK and FAIL are doctest's (see base/error.h).
$(TEST_OBJS): CPPFLAGS += -DMT_NO_SHORT_CHECK

$(TEST_BIN): $(TEST_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $(TEST_OBJS) $(LIB) $(LDLIBS) -o $@

# Tests run from the repository root so that ../shared/data is found when present.
# TEST_ARGS passes doctest options, e.g. TEST_ARGS='-ts=tensor' or TEST_ARGS='-tc=*adamw*'.
test: all $(TEST_BIN)
	$(TEST_BIN) $(TEST_ARGS)

-include mk/*.mk

clean:
	rm -rf $(BUILD)

format:
	clang-format -i $$(git ls-files '*.h' '*.cpp' '*.cu' '*.cuh')

-include $(LIB_OBJS:.o=.d) $(TEST_OBJS:.o=.d) $(APP_SRCS:%.cpp=$(BUILD)/obj/%.d)
