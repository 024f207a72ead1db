// matmul, bmm, linear (see matmul.h) and the CPU GEMM they run on.
//
// The GEMM follows the Goto/BLIS structure:
//   for jc (NC columns of B)          B block  [KC x NC]  packed once, shared by all threads
//     for pc (KC of the K dim)
//       for ic (MC rows of A), threads  A block [MC x KC] packed per thread
//         for jr (NR), ir (MR)          register tile: MR x NR accumulators, KC FMAs each
// Packing lays each MR-row sliver of A and NR-column sliver of B out contiguously in the order
// the micro-kernel reads them, so the inner loop streams two unit-stride buffers whatever the
// operands' strides, and the B sliver (KC x NR) stays in L1 while the A block stays in L2.
#include "ops/matmul.h"

#include <omp.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "cuda/matmul.cuh"
#include "ops/cuda_dispatch.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"

namespace mt::ops {

namespace {

// One SIMD register's worth of T as a GCC vector type: the compiler maps `a * b + c` on it to
// one FMA instruction. 64 bytes (16 floats) where AVX-512 exists, else 32 (AVX2).
#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#else
constexpr int kVecBytes = 32;
#endif

template <typename T>
struct GemmTraits {
  typedef T Vec __attribute__((vector_size(kVecBytes)));
  static constexpr int kLanes = kVecBytes / static_cast<int>(sizeof(T));
  // Register tile: 6 rows x 2 vectors = 12 accumulators, plus 2 B vectors and 1 broadcast A
  // value = 15 registers, which fits the 16 of AVX2 (AVX-512 has 32) with no spills.
  static constexpr int MR = 6;
  static constexpr int NR = 2 * kLanes;
  // KC x NR of B (256 x 32 floats = 32 KiB with AVX-512) stays in the 48 KiB L1 while an A
  // sliver streams past it; MC x KC of A (120 x 256 x 4 B = 120 KiB) sits in L2 (1 MiB);
  // KC x NC of B (256 x 2048 x 4 B = 2 MiB) in L3.
  static constexpr int64_t KC = 256;
  static constexpr int64_t MC = 120;
  static constexpr int64_t NC = 2048;
  static_assert(MC % MR == 0, "an A block is a whole number of MR slivers");
  static_assert(NC % NR == 0, "a B block is a whole number of NR slivers");
};

// Packs A[0:mc, 0:kc] into MR-row slivers, each laid out [kc][MR]; rows past mc are zero so the
// micro-kernel always computes a full tile.
template <typename T>
void pack_a(int64_t mc, int64_t kc, const T* A, int64_t rs, int64_t cs, T* out) {
  constexpr int MR = GemmTraits<T>::MR;
  for (int64_t i0 = 0; i0 < mc; i0 += MR) {
    const int64_t rows = std::min<int64_t>(MR, mc - i0);
    for (int64_t k = 0; k < kc; ++k) {
      for (int64_t r = 0; r < MR; ++r) {
        out[k * MR + r] = r < rows ? A[(i0 + r) * rs + k * cs] : T(0);
      }
    }
    out += kc * MR;
  }
}

// Packs one NR-column sliver B[0:kc, 0:cols] laid out [kc][NR], zero-padded past cols.
template <typename T>
void pack_b_sliver(int64_t kc, int64_t cols, const T* B, int64_t rs, int64_t cs, T* out) {
  constexpr int NR = GemmTraits<T>::NR;
  if (cols == NR && cs == 1) {
    for (int64_t k = 0; k < kc; ++k) std::copy(B + k * rs, B + k * rs + NR, out + k * NR);
    return;
  }
  for (int64_t k = 0; k < kc; ++k) {
    for (int64_t c = 0; c < NR; ++c) out[k * NR + c] = c < cols ? B[k * rs + c * cs] : T(0);
  }
}

// C[0:mr, 0:nr] (+)= Ap-sliver . Bp-sliver over kc: the register tile.
template <typename T>
void micro_kernel(int64_t kc, const T* Ap, const T* Bp, T* C, int64_t ldc, int64_t mr, int64_t nr,
                  bool accumulate) {
  using Tr = GemmTraits<T>;
  using V = typename Tr::Vec;
  constexpr int MR = Tr::MR;
  constexpr int L = Tr::kLanes;
  V acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = V{};
  for (int64_t k = 0; k < kc; ++k) {
    V b0, b1;
    __builtin_memcpy(&b0, Bp + k * Tr::NR, sizeof(V));
    __builtin_memcpy(&b1, Bp + k * Tr::NR + L, sizeof(V));
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const T a = Ap[k * MR + i];
      acc[i][0] += a * b0;
      acc[i][1] += a * b1;
    }
  }
  if (mr == MR && nr == Tr::NR) {
    for (int i = 0; i < MR; ++i) {
      for (int h = 0; h < 2; ++h) {
        T* c = C + i * ldc + h * L;
        V v = acc[i][h];
        if (accumulate) {
          V old;
          __builtin_memcpy(&old, c, sizeof(V));
          v += old;
        }
        __builtin_memcpy(c, &v, sizeof(V));
      }
    }
    return;
  }
  T tile[MR][Tr::NR];  // an edge tile: spill the registers, then write only the valid part
  __builtin_memcpy(tile, acc, sizeof(tile));
  for (int64_t i = 0; i < mr; ++i) {
    for (int64_t j = 0; j < nr; ++j) {
      C[i * ldc + j] = accumulate ? C[i * ldc + j] + tile[i][j] : tile[i][j];
    }
  }
}

// A small C over a long K (the weight gradient dW = dy^T . x: 256 x 64 over K = 65536) splits K
// over the threads instead of rows: each thread sums its K range into a private C, and the
// partial Cs are added in thread order at the end (deterministic for a given thread count). One
// join in place of two barriers per KC step, which matters on a loaded machine where a barrier
// can wait a whole scheduler slice for a descheduled thread.
constexpr int64_t kSplitKMaxOutput = 128 * 1024;  // C up to 512 KiB of floats: adds cost little
constexpr int64_t kSplitKMinDepth = 1024;         // each thread gets at least 4 KC steps

template <typename T>
void gemm_split_k(int64_t M, int64_t N, int64_t K, const T* A, int64_t a_rs, int64_t a_cs,
                  const T* B, int64_t b_rs, int64_t b_cs, T* C, int64_t ldc, bool accumulate,
                  int threads) {
  std::vector<T> partial(static_cast<size_t>((threads - 1) * M * N));
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const int64_t k0 = K * t / threads, k1 = K * (t + 1) / threads;
    if (t == 0) {
      gemm_cpu(M, N, k1, A, a_rs, a_cs, B, b_rs, b_cs, C, ldc, accumulate, false);
    } else {
      gemm_cpu(M, N, k1 - k0, A + k0 * a_cs, a_rs, a_cs, B + k0 * b_rs, b_rs, b_cs,
               partial.data() + (t - 1) * M * N, N, false, false);
    }
  }
  for (int t = 1; t < threads; ++t) {
    const T* p = partial.data() + (t - 1) * M * N;
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] += p[i * N + j];
    }
  }
}

}  // namespace

template <typename T>
void gemm_cpu(int64_t M, int64_t N, int64_t K, const T* A, int64_t a_rs, int64_t a_cs, const T* B,
              int64_t b_rs, int64_t b_cs, T* C, int64_t ldc, bool accumulate, bool parallel) {
  using Tr = GemmTraits<T>;
  constexpr int MR = Tr::MR;
  constexpr int NR = Tr::NR;
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (!accumulate) {
      for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, T(0));
    }
    return;
  }
  // Threads only for products big enough to repay them: a fork/join costs microseconds (and
  // far more on a loaded machine, where a barrier waits for a descheduled thread), as much as a
  // 2^17 multiply-add product takes on one core. A thread gets at least that much work.
  constexpr int64_t kWorkPerThread = int64_t(1) << 17;
  const int64_t work = M * N * K;
  const int threads = parallel
                          ? static_cast<int>(std::max<int64_t>(
                                1, std::min<int64_t>(omp_get_max_threads(), work / kWorkPerThread)))
                          : 1;
  if (threads > 1 && M * N <= kSplitKMaxOutput && K >= threads * kSplitKMinDepth) {
    gemm_split_k(M, N, K, A, a_rs, a_cs, B, b_rs, b_cs, C, ldc, accumulate, threads);
    return;
  }
  // Enough row blocks for every thread: a 256-row dW product on 2 threads gets 2 blocks of 128
  // rather than 3 of 120 (one thread idle a third of the time).
  const int64_t rows_per_thread = (M + threads - 1) / threads;
  const int64_t mc = std::min(Tr::MC, (rows_per_thread + MR - 1) / MR * MR);
  const int64_t kc_max = std::min(Tr::KC, K);
  const int64_t nc_max = std::min(Tr::NC, (N + NR - 1) / NR * NR);
  using V = typename Tr::Vec;  // vector-typed storage: aligned to a full register
  constexpr int64_t L = Tr::kLanes;
  std::vector<V> b_buf((kc_max * nc_max + L - 1) / L);
  std::vector<V> a_buf(threads * ((mc * kc_max + L - 1) / L));
  T* Bp = reinterpret_cast<T*>(b_buf.data());
  const int64_t a_stride = (mc * kc_max + L - 1) / L * L;

#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    T* Ap = reinterpret_cast<T*>(a_buf.data()) + omp_get_thread_num() * a_stride;
    for (int64_t jc = 0; jc < N; jc += Tr::NC) {
      const int64_t nc = std::min(Tr::NC, N - jc);
      for (int64_t pc = 0; pc < K; pc += Tr::KC) {
        const int64_t kc = std::min(Tr::KC, K - pc);
        const bool acc = accumulate || pc > 0;
        const int64_t slivers = (nc + NR - 1) / NR;
#pragma omp for schedule(static)
        for (int64_t s = 0; s < slivers; ++s) {
          pack_b_sliver(kc, std::min<int64_t>(NR, nc - s * NR),
                        B + pc * b_rs + (jc + s * NR) * b_cs, b_rs, b_cs, Bp + s * NR * kc);
        }
        const int64_t blocks = (M + mc - 1) / mc;
#pragma omp for schedule(dynamic)
        for (int64_t blk = 0; blk < blocks; ++blk) {
          const int64_t ic = blk * mc;
          const int64_t mcur = std::min(mc, M - ic);
          pack_a(mcur, kc, A + ic * a_rs + pc * a_cs, a_rs, a_cs, Ap);
          for (int64_t jr = 0; jr < nc; jr += NR) {
            for (int64_t ir = 0; ir < mcur; ir += MR) {
              micro_kernel(kc, Ap + ir * kc, Bp + jr * kc, C + (ic + ir) * ldc + jc + jr, ldc,
                           std::min<int64_t>(MR, mcur - ir), std::min<int64_t>(NR, nc - jr), acc);
            }
          }
        }
      }
    }
  }
}

template void gemm_cpu<float>(int64_t, int64_t, int64_t, const float*, int64_t, int64_t,
                              const float*, int64_t, int64_t, float*, int64_t, bool, bool);
template void gemm_cpu<double>(int64_t, int64_t, int64_t, const double*, int64_t, int64_t,
                               const double*, int64_t, int64_t, double*, int64_t, bool, bool);

namespace {

void check_operands(const Tensor& a, const Tensor& b, const char* op) {
  CHECK(a.defined() && b.defined(), "{}: got an undefined tensor", op);
  CHECK(a.dtype() == b.dtype(), "{}: dtype mismatch: {} vs {}", op, a.describe(), b.describe());
  CHECK(a.device() == b.device(), "{}: device mismatch: {} vs {}", op, a.describe(), b.describe());
  CHECK(is_floating(a.dtype()), "{}: expected floating tensors, got {}", op, a.describe());
}

// Element offsets of each matrix in a batch of shape `batch`, walking `strides` (the leading
// strides of an operand already expanded to the batch shape).
std::vector<int64_t> batch_offsets(const Shape& batch, const Shape& strides) {
  std::vector<int64_t> offsets(static_cast<size_t>(shape_numel(batch)), 0);
  for (size_t n = 0; n < offsets.size(); ++n) {
    int64_t rest = static_cast<int64_t>(n);
    for (int d = static_cast<int>(batch.size()) - 1; d >= 0; --d) {
      offsets[n] += (rest % batch[d]) * strides[d];
      rest /= batch[d];
    }
  }
  return offsets;
}

// out[n] = a[n] . b[n] for every matrix n of the batch; a [..., M, K], b [..., K, N] expanded
// to the same batch dims, out contiguous [..., M, N]. Many small matrices (attention's per-head
// products) run one per thread; otherwise each product uses all threads.
template <typename T>
void batched_gemm(const Tensor& a, const Tensor& b, Tensor& out) {
  const int r = a.dim();
  const int64_t M = a.size(r - 2), K = a.size(r - 1), N = b.size(r - 1);
  const Shape batch(a.shape().begin(), a.shape().end() - 2);
  const std::vector<int64_t> a_off = batch_offsets(batch, a.strides());
  const std::vector<int64_t> b_off = batch_offsets(batch, b.strides());
  const int64_t count = static_cast<int64_t>(a_off.size());
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* pc = out.data<T>();
  const int64_t work = M * N * K;
  const bool per_thread = count >= 2 * omp_get_max_threads() && work < (int64_t(1) << 21) &&
                          count * work >= (int64_t(1) << 18);
#pragma omp parallel for schedule(dynamic) if (per_thread)
  for (int64_t n = 0; n < count; ++n) {
    gemm_cpu<T>(M, N, K, pa + a_off[n], a.stride(r - 2), a.stride(r - 1), pb + b_off[n],
                b.stride(r - 2), b.stride(r - 1), pc + n * M * N, N, false, !per_thread);
  }
}

// dw = dy^T . x and db = the column sums of dy, as two ops on every device: on the GPU a plain
// GEMM and our column sum beat cuBLASLt's BGRADB epilogue, which computes db in a separate
// kernel after the GEMM (cuda/matmul.cuh). dy [rows, out], x [rows, in].
Tensor linear_weight_grad_two_ops(const Tensor& dy, const Tensor& x, Tensor* db) {
  if (db != nullptr) *db = sum(dy, {0});
  return matmul(dy.transpose(0, 1), x);
}

#ifdef MT_WITH_CUDA
// t [batch..., R, C] as a cuBLASLt operand, if its layout allows: unit stride along one of the
// two matrix dims (row-major or transposed) and batch dims that collapse to one stride.
bool gemm_layout(const Tensor& t, cuda::GemmOperand& op) {
  const int r = t.dim();
  const int64_t R = t.size(r - 2), C = t.size(r - 1), s0 = t.stride(r - 2), s1 = t.stride(r - 1);
  if ((s1 == 1 || C == 1) && (R == 1 || s0 >= std::max<int64_t>(C, 1))) {
    op.transpose = false;
    op.ld = R == 1 ? std::max<int64_t>(C, 1) : s0;
  } else if ((s0 == 1 || R == 1) && (C == 1 || s1 >= std::max<int64_t>(R, 1))) {
    op.transpose = true;
    op.ld = C == 1 ? std::max<int64_t>(R, 1) : s1;
  } else {
    return false;
  }
  bool first = true;
  int64_t expected = 0;
  op.batch_stride = 0;
  for (int d = r - 3; d >= 0; --d) {
    if (t.size(d) == 1) continue;
    if (first) {
      op.batch_stride = t.stride(d);
      first = false;
    } else if (t.stride(d) != expected) {
      return false;
    }
    expected = t.stride(d) * t.size(d);
  }
  op.data = t.raw_data();
  return true;
}

// The operand for t, copying it to a dense layout when its strides do not fit (kept alive in
// `keep`).
cuda::GemmOperand gemm_operand(const Tensor& t, Tensor& keep) {
  cuda::GemmOperand op{};
  keep = t;
  if (!gemm_layout(keep, op)) {
    keep = t.contiguous();
    CHECK(gemm_layout(keep, op), "matmul (cuda): cannot lay out {}", t.describe());
  }
  return op;
}

// a, b already expanded to [batch..., M, K] and [batch..., K, N]; out dense [batch..., M, N].
Tensor matmul_cuda(const Tensor& a, const Tensor& b, Tensor& out) {
  const int r = out.dim();
  const int64_t M = out.size(r - 2), N = out.size(r - 1), K = a.size(r - 1);
  if (out.numel() == 0) return out;
  if (K == 0) return out.zero_();
  const int64_t batch = out.numel() / (M * N);
  Tensor ka, kb;
  const cuda::GemmOperand oa = gemm_operand(a, ka), ob = gemm_operand(b, kb);
  cuda::launch_gemm(to_elem_type(a.dtype()), to_elem_type(out.dtype()), M, N, K, batch, oa, ob,
                    out.raw_data(), N, M * N, 1.0f, false);
  return out;
}

// x [..., in] . w [out, in]^T + bias: one GEMM with w read transposed in place, the bias added
// by cuBLASLt's epilogue.
Tensor linear_cuda(const Tensor& x, const Tensor& w, const Tensor& bias) {
  const int64_t in = w.size(1), out_f = w.size(0);
  const Tensor x2 = x.reshape({-1, in});
  const int64_t rows = x2.size(0);
  Tensor y = Tensor::empty({rows, out_f}, x.dtype(), x.device());
  Shape out_shape = x.shape();
  out_shape.back() = out_f;
  if (y.numel() == 0) return y.reshape(out_shape);
  const Tensor b = bias.defined() ? bias.to(x.dtype()).contiguous() : Tensor();
  if (in == 0) {
    y.zero_();
    return (b.defined() ? ops::add(y, b) : y).reshape(out_shape);
  }
  Tensor ka, kb;
  const cuda::GemmOperand oa = gemm_operand(x2, ka), ob = gemm_operand(w.transpose(0, 1), kb);
  cuda::GemmEpilogue bias_add;
  if (b.defined()) bias_add = {cuda::Epilogue::kBias, b.raw_data()};
  cuda::launch_gemm(to_elem_type(x.dtype()), to_elem_type(x.dtype()), rows, out_f, in, 1, oa, ob,
                    y.raw_data(), out_f, 0, 1.0f, false, bias_add);
  return y.reshape(out_shape);
}
#endif  // MT_WITH_CUDA

// a [..., M, K] . b [..., K, N] with their batch dims broadcast to `batch`: [batch..., M, N].
Tensor matmul_batched(const Tensor& a, const Tensor& b, const Shape& batch) {
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  Shape a_shape = batch, b_shape = batch, out_shape = batch;
  a_shape.insert(a_shape.end(), {M, K});
  b_shape.insert(b_shape.end(), {K, N});
  out_shape.insert(out_shape.end(), {M, N});
  Tensor out = Tensor::empty(out_shape, a.dtype(), a.device());
  MT_RETURN_IF_CUDA(a.is_cuda(), matmul_cuda(a.expand(a_shape), b.expand(b_shape), out));
  if (a.dtype() == kBFloat16) {  // widen, multiply in float32, round once
    return matmul(a.to(kFloat32), b.to(kFloat32)).to(kBFloat16).reshape(out_shape);
  }
  if (a.dtype() == kFloat32) {
    batched_gemm<float>(a.expand(a_shape), b.expand(b_shape), out);
  } else {
    batched_gemm<double>(a.expand(a_shape), b.expand(b_shape), out);
  }
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  check_operands(a_in, b_in, "matmul");
  CHECK(a_in.dim() >= 1 && b_in.dim() >= 1,
        "matmul: operands must have at least 1 dim, got {} "
        "and {}",
        a_in.describe(), b_in.describe());
  const bool a_vec = a_in.dim() == 1, b_vec = b_in.dim() == 1;
  const Tensor a = a_vec ? a_in.unsqueeze(0) : a_in;  // [K] -> [1, K]
  const Tensor b = b_vec ? b_in.unsqueeze(1) : b_in;  // [K] -> [K, 1]
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  CHECK(b.size(-2) == K, "matmul: inner dims differ: {} . {} ({} vs {})", shape_str(a_in.shape()),
        shape_str(b_in.shape()), K, b.size(-2));
  const Shape batch = broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2),
                                       Shape(b.shape().begin(), b.shape().end() - 2), "matmul");
  const Tensor out = matmul_batched(a, b, batch);
  if (!a_vec && !b_vec) return out;
  Shape final_shape = batch;  // drop the dims that the 1-D operands stood in for
  if (!a_vec) final_shape.push_back(M);
  if (!b_vec) final_shape.push_back(N);
  return out.view(final_shape);
}

Tensor bmm(const Tensor& a, const Tensor& b) {
  check_operands(a, b, "bmm");
  CHECK(a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0) && a.size(2) == b.size(1),
        "bmm: expected [B, M, K] . [B, K, N], got {} . {}", shape_str(a.shape()),
        shape_str(b.shape()));
  return matmul(a, b);
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  check_operands(x, w, "linear");
  CHECK(w.dim() == 2 && x.dim() >= 1 && x.size(-1) == w.size(1),
        "linear: expected x [..., in] and w [out, in], got x {} and w {}", shape_str(x.shape()),
        shape_str(w.shape()));
  const int64_t in = w.size(1), out_f = w.size(0);
  if (bias.defined()) {
    check_operands(x, bias, "linear");
    CHECK(bias.dim() == 1 && bias.size(0) == out_f, "linear: bias {} does not match w {}",
          shape_str(bias.shape()), shape_str(w.shape()));
  }
  Shape out_shape = x.shape();
  out_shape.back() = out_f;
  MT_RETURN_IF_CUDA(x.is_cuda(), linear_cuda(x, w, bias));
  if (x.dtype() == kBFloat16) {
    const Tensor b32 = bias.defined() ? bias.to(kFloat32) : Tensor();
    return linear(x.to(kFloat32), w.to(kFloat32), b32).to(kBFloat16);
  }
  const Tensor x2 = x.reshape({-1, in});
  const int64_t rows = x2.size(0);
  Tensor y = Tensor::empty({rows, out_f}, x.dtype());
  if (bias.defined()) y.copy_(bias.expand({rows, out_f}));  // then accumulate x . w^T onto it
  // B = w^T: element (k, n) of B is w[n, k], so B's row stride is w's column stride.
  MT_DISPATCH_FLOAT(x.dtype(), "linear", [&] {
    if constexpr (!std::is_same_v<scalar_t, bf16>) {
      gemm_cpu<scalar_t>(rows, out_f, in, x2.data<scalar_t>(), x2.stride(0), x2.stride(1),
                         w.data<scalar_t>(), w.stride(1), w.stride(0), y.data<scalar_t>(), out_f,
                         bias.defined(), true);
    }
  });
  return y.view(out_shape);
}

Tensor linear_weight_grad(const Tensor& dy, const Tensor& x, Tensor* db) {
  check_operands(dy, x, "linear_weight_grad");
  CHECK(dy.dim() >= 1 && dy.dim() == x.dim() &&
            std::equal(dy.shape().begin(), dy.shape().end() - 1, x.shape().begin()),
        "linear_weight_grad: expected dy [..., out] and x [..., in] with the same leading dims, "
        "got dy {} and x {}",
        shape_str(dy.shape()), shape_str(x.shape()));
  const int64_t rows = shape_numel(Shape(dy.shape().begin(), dy.shape().end() - 1));
  const Tensor dy2 = dy.reshape({rows, dy.size(-1)}), x2 = x.reshape({rows, x.size(-1)});
  return linear_weight_grad_two_ops(dy2, x2, db);
}

}  // namespace mt::ops
