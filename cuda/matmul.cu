// cuBLASLt GEMM with row-major semantics and cached plans (see matmul.cuh).
//
// cuBLASLt is column-major. A row-major M x N matrix with row stride ld is, read column-major,
// its N x M transpose with the same ld. So C = A B is computed as C^T = B^T A^T: cuBLASLt's
// "A" is our B and its "B" is our A, with m = N and n = M, and nothing is copied. The epilogues
// translate the same way: cuBLASLt's bias runs along the m rows of its D, which are our C's N
// columns, and its GELU's auxiliary output is our C's layout.
//
// A plan is what cublasLtMatmul needs besides the pointers: the operation descriptor (compute
// type, transposes, epilogue), the three matrix layouts and the heuristic's algorithm. Asking
// the heuristic costs tens of microseconds of host time, more than the GEMMs of the seed model
// take on the GPU, so each problem asks once and its plan is kept (a map under one mutex, which
// also guards setting a kept descriptor's pointers until cublasLtMatmul has read them).
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "cuda/context.cuh"
#include "cuda/debug.h"
#include "cuda/kernel_utils.cuh"
#include "cuda/matmul.cuh"

namespace mt::cuda {

namespace {

std::atomic<int64_t> g_heuristic_queries{0};
std::atomic<int64_t> g_epilogue_fallbacks{0};
std::atomic<bool> g_epilogues_enabled{true};

// A training run meets a few dozen distinct GEMMs; past this many (inference over ever new
// lengths, say) the cache starts over rather than grow without bound.
constexpr size_t kMaxPlans = 4096;

cudaDataType_t cuda_type(ElemType t) {
  switch (t) {
    case ElemType::F32:
      return CUDA_R_32F;
    case ElemType::BF16:
      return CUDA_R_16BF;
    case ElemType::F64:
      return CUDA_R_64F;
    default:
      break;
  }
  FAIL("gemm (cuda): element type {} is not a GEMM type", int(t));
}

// Largest power of two <= cap dividing the address (0 for a null pointer). cuBLASLt picks
// vectorized kernels only for operands it knows are aligned, and a sliced view (q out of a
// fused qkv) may not be.
uint32_t alignment(const void* p, uint32_t cap) {
  if (p == nullptr) return 0;
  const auto addr = reinterpret_cast<uintptr_t>(p);
  uint32_t a = cap;
  while (a > 1 && addr % a != 0) a /= 2;
  return a;
}

// Everything the algorithm cuBLASLt picks may depend on. A, B and C's alignments are what the
// heuristic is promised (up to 16 bytes); the epilogue's vector and aux it reads off the
// pointers themselves (cublasLtMatmulDescAttributes_t: "depend on its value to determine
// expected pointer alignment"), so those count up to 256 bytes.
struct PlanKey {
  int device, ab_type, c_type, epilogue;
  int64_t M, N, K, batch, lda, ldb, ldc, stride_a, stride_b, stride_c, aux_ld;
  bool trans_a, trans_b, accumulate;
  uint32_t align_a, align_b, align_c, align_vec, align_aux;

  auto tie() const {
    return std::tie(device, ab_type, c_type, epilogue, M, N, K, batch, lda, ldb, ldc, stride_a,
                    stride_b, stride_c, aux_ld, trans_a, trans_b, accumulate, align_a, align_b,
                    align_c, align_vec, align_aux);
  }
  bool operator<(const PlanKey& o) const { return tie() < o.tie(); }
};

class Layout {
 public:
  Layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
         int64_t stride) {
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&h, type, rows, cols, ld));
    if (batch > 1) {
      const int32_t count = int32_t(batch);
      CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(h, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                                    sizeof(count)));
      CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(h, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                    &stride, sizeof(stride)));
    }
  }
  ~Layout() { cublasLtMatrixLayoutDestroy(h); }
  Layout(const Layout&) = delete;
  Layout& operator=(const Layout&) = delete;
  cublasLtMatrixLayout_t h = nullptr;
};

class OperationDesc {
 public:
  explicit OperationDesc(bool f64) {
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&h, f64 ? CUBLAS_COMPUTE_64F : CUBLAS_COMPUTE_32F,
                                          f64 ? CUDA_R_64F : CUDA_R_32F));
  }
  ~OperationDesc() { cublasLtMatmulDescDestroy(h); }
  OperationDesc(const OperationDesc&) = delete;
  OperationDesc& operator=(const OperationDesc&) = delete;
  template <typename V>
  void set(cublasLtMatmulDescAttributes_t attr, const V& value) {
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(h, attr, &value, sizeof(value)));
  }
  cublasLtMatmulDesc_t h = nullptr;
};

bool reads_bias(cublasLtEpilogue_t e) {
  return e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_GELU_BIAS ||
         e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
}
bool uses_aux(cublasLtEpilogue_t e) { return e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS; }

// The descriptors of one problem and, once the heuristic has answered, its algorithm.
struct Plan {
  explicit Plan(const PlanKey& k)
      : desc(k.ab_type == int(ElemType::F64)),
        // Stored shapes, column-major: our B is N x K (K x N when transposed), our A K x M.
        la(cuda_type(ElemType(k.ab_type)), k.trans_b ? k.K : k.N, k.trans_b ? k.N : k.K, k.ldb,
           k.batch, k.stride_b),
        lb(cuda_type(ElemType(k.ab_type)), k.trans_a ? k.M : k.K, k.trans_a ? k.K : k.M, k.lda,
           k.batch, k.stride_a),
        lc(cuda_type(ElemType(k.c_type)), k.N, k.M, k.ldc, k.batch, k.stride_c) {
    // cuBLASLt "A" = our B, "B" = our A (see the file comment).
    desc.set(CUBLASLT_MATMUL_DESC_TRANSA, k.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N);
    desc.set(CUBLASLT_MATMUL_DESC_TRANSB, k.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N);
    const auto epilogue = cublasLtEpilogue_t(k.epilogue);
    desc.set(CUBLASLT_MATMUL_DESC_EPILOGUE, epilogue);
    // The bias has C's type.
    if (reads_bias(epilogue))
      desc.set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, cuda_type(ElemType(k.c_type)));
    if (uses_aux(epilogue)) desc.set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, k.aux_ld);
  }
  OperationDesc desc;
  Layout la, lb, lc;
  cublasLtMatmulAlgo_t algo{};
  bool supported = false;
};

struct PlanCache {
  std::mutex mutex;
  std::map<PlanKey, std::unique_ptr<Plan>> plans;
};

PlanCache& plan_cache() {
  static PlanCache* c = new PlanCache();  // never destroyed: see caching_allocator()
  return *c;
}

// The call's own pointers go into the descriptor before the heuristic (which reads their
// alignment) and before every cublasLtMatmul.
void set_pointers(OperationDesc& desc, cublasLtEpilogue_t epilogue, const GemmEpilogue& e) {
  if (epilogue == CUBLASLT_EPILOGUE_DEFAULT) return;
  desc.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, e.vec);
  if (uses_aux(epilogue)) desc.set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, e.aux);
}

// Asks the heuristic for the plan's algorithm. True when it has one. An epilogue it refuses
// (CUBLAS_STATUS_NOT_SUPPORTED, or any other failure status, or no algorithm) gives false when
// `may_refuse`, else an Error.
bool choose_algorithm(Plan& plan, const PlanKey& k, bool may_refuse) {
  cublasLtMatmulPreference_t pref = nullptr;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  auto set = [&](cublasLtMatmulPreferenceAttributes_t attr, const auto& value) {
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &value, sizeof(value)));
  };
  set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64_t(cublas_workspace_bytes()));
  set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, k.align_b);  // cuBLASLt "A" = our B
  set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, k.align_a);
  set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, k.align_c);
  set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, k.align_c);
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t status =
      cublasLtMatmulAlgoGetHeuristic(cublaslt_handle(), plan.desc.h, plan.la.h, plan.lb.h,
                                     plan.lc.h, plan.lc.h, pref, 1, &result, &found);
  ++g_heuristic_queries;
  cublasLtMatmulPreferenceDestroy(pref);
  if (status == CUBLAS_STATUS_SUCCESS && found > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
    plan.algo = result.algo;
    return true;
  }
  if (may_refuse) return false;
  CUBLAS_CHECK(status);
  FAIL("gemm (cuda): cuBLASLt has no algorithm for M={} N={} K={} batch={}", k.M, k.N, k.K,
       k.batch);
}

// The cuBLASLt epilogue of a call, DEFAULT for float64's bias (a kernel adds it afterwards).
cublasLtEpilogue_t lt_epilogue(const GemmEpilogue& e, bool f64) {
  switch (e.kind) {
    case Epilogue::kNone:
      return CUBLASLT_EPILOGUE_DEFAULT;
    case Epilogue::kBias:
      return f64 ? CUBLASLT_EPILOGUE_DEFAULT : CUBLASLT_EPILOGUE_BIAS;
    case Epilogue::kBiasGelu:
      return e.aux != nullptr ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_BIAS;
  }
  FAIL("gemm (cuda): unknown epilogue {}", int(e.kind));
}

// Whether a fused epilogue (anything beyond the bias) can be asked of cuBLASLt at all: batch 1,
// no empty dimension (the vector it writes would need defining on its own), float32 or bf16
// (float64 keeps the plain GEMM), and the aux row stride cublasLt.h demands ("must be divisible
// by 8 and be no less than the number of rows in the output matrix", our N).
bool epilogue_possible(bool f64, int64_t M, int64_t N, int64_t K, int64_t batch,
                       const GemmEpilogue& e) {
  if (!g_epilogues_enabled || f64 || batch != 1 || M == 0 || N == 0 || K == 0) return false;
  if (e.aux == nullptr) return true;
  return e.aux_ld % 8 == 0 && e.aux_ld >= N;
}

PlanKey plan_key(ElemType ab_type, ElemType c_type, int64_t M, int64_t N, int64_t K, int64_t batch,
                 const GemmOperand& a, const GemmOperand& b, const void* c, int64_t ldc,
                 int64_t c_batch_stride, bool accumulate, cublasLtEpilogue_t lt,
                 const GemmEpilogue& e) {
  PlanKey k{};
  k.device = current_device();
  k.ab_type = int(ab_type);
  k.c_type = int(c_type);
  k.epilogue = int(lt);
  k.M = M;
  k.N = N;
  k.K = K;
  k.batch = batch;
  k.lda = a.ld;
  k.ldb = b.ld;
  k.ldc = ldc;
  k.stride_a = a.batch_stride;
  k.stride_b = b.batch_stride;
  k.stride_c = c_batch_stride;
  k.aux_ld = uses_aux(lt) ? e.aux_ld : 0;
  k.trans_a = a.transpose;
  k.trans_b = b.transpose;
  k.accumulate = accumulate;
  k.align_a = alignment(a.data, 16);
  k.align_b = alignment(b.data, 16);
  k.align_c = alignment(c, 16);
  k.align_vec = lt == CUBLASLT_EPILOGUE_DEFAULT ? 0 : alignment(e.vec, 256);
  k.align_aux = uses_aux(lt) ? alignment(e.aux, 256) : 0;
  return k;
}

template <typename T>
__global__ void add_bias_kernel(T* c, const T* bias, int64_t rows, int64_t N, int64_t ldc) {
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < rows * N;
       j += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = j / N, n = j % N;
    c[r * ldc + n] += bias[n];
  }
}

}  // namespace

bool launch_gemm(ElemType ab_type, ElemType c_type, int64_t M, int64_t N, int64_t K, int64_t batch,
                 const GemmOperand& a, const GemmOperand& b, void* c, int64_t ldc,
                 int64_t c_batch_stride, float alpha_f, bool accumulate,
                 const GemmEpilogue& epilogue) {
  const bool f64 = ab_type == ElemType::F64;
  CHECK(f64 == (c_type == ElemType::F64), "gemm (cuda): float64 operands need a float64 output");
  const bool fused = epilogue.kind != Epilogue::kNone && epilogue.kind != Epilogue::kBias;
  if (fused && !epilogue_possible(f64, M, N, K, batch, epilogue)) {
    ++g_epilogue_fallbacks;
    return false;
  }
  if (M == 0 || N == 0 || batch == 0) return true;
  CHECK(epilogue.kind == Epilogue::kNone || epilogue.vec != nullptr,
        "gemm (cuda): epilogue {} without its vector", int(epilogue.kind));
  NvtxRange range("gemm");
  const cublasLtEpilogue_t lt = lt_epilogue(epilogue, f64);
  const PlanKey key = plan_key(ab_type, c_type, M, N, K, batch, a, b, c, ldc, c_batch_stride,
                               accumulate, lt, epilogue);
  PlanCache& cache = plan_cache();
  {
    std::lock_guard<std::mutex> lock(cache.mutex);
    auto it = cache.plans.find(key);
    if (it == cache.plans.end()) {
      if (cache.plans.size() >= kMaxPlans) cache.plans.clear();
      auto plan = std::make_unique<Plan>(key);
      set_pointers(plan->desc, lt, epilogue);
      plan->supported = choose_algorithm(*plan, key, fused);
      it = cache.plans.emplace(key, std::move(plan)).first;
    }
    Plan& plan = *it->second;
    if (!plan.supported) {
      ++g_epilogue_fallbacks;
      return false;
    }
    set_pointers(plan.desc, lt, epilogue);
    const double alpha_d = alpha_f, beta_d = accumulate ? 1.0 : 0.0;
    const float beta_f = accumulate ? 1.0f : 0.0f;
    const void* alpha = f64 ? static_cast<const void*>(&alpha_d) : &alpha_f;
    const void* beta = f64 ? static_cast<const void*>(&beta_d) : &beta_f;
    CUBLAS_CHECK(cublasLtMatmul(cublaslt_handle(), plan.desc.h, alpha, b.data, plan.la.h, a.data,
                                plan.lb.h, beta, c, plan.lc.h, c, plan.lc.h, &plan.algo,
                                cublas_workspace(), cublas_workspace_bytes(), stream()));
  }
  if (epilogue.kind == Epilogue::kBias && f64) {
    for (int64_t i = 0; i < batch; ++i) {
      double* ci = static_cast<double*>(c) + i * c_batch_stride;
      add_bias_kernel<double><<<grid_for(M * N), kThreads, 0, stream()>>>(
          ci, static_cast<const double*>(epilogue.vec), M, N, ldc);
      LAUNCH_CHECK();
    }
  }
  return true;
}

int64_t gemm_heuristic_queries() { return g_heuristic_queries.load(); }
int64_t gemm_epilogue_fallbacks() { return g_epilogue_fallbacks.load(); }
void set_gemm_epilogues(bool on) { g_epilogues_enabled = on; }

}  // namespace mt::cuda
