// The attention-dropout mask (cuda/attention_dropout.h): its statistics, and the same bits from
// every kernel as from the CPU.
//
// The statistics are those a dropout mask must have to be fit for purpose: the keep rate within
// 3 sigma of 1 - p overall, per bit of the byte drawn and per byte position of a draw, and no
// correlation (|r| < 3 / sqrt(n)) between neighbouring scores, words and draws of a row, rows,
// heads, batches, steps (offsets) and seeds. The same suite run on deliberately bad generators
// must fail, so that it can.
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "cuda/attention_dropout.h"
#include "ops/attention.h"
#include "tests/test_util.h"

using namespace mt;
using mt::ops::AttentionOptions;

namespace {

// The mask byte of element (row, col) of head bh under (seed, offset).
using ByteSource = std::function<uint32_t(uint64_t seed, uint64_t offset, uint32_t bh, uint32_t row,
                                          uint32_t col)>;

uint32_t real_byte(uint64_t seed, uint64_t offset, uint32_t bh, uint32_t row, uint32_t col) {
  return DropoutKey::of(seed, offset).head(bh).byte(row, col);
}

// Pearson's r of pairs (x, y), accumulated.
struct Correlation {
  double n = 0, sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
  void add(double x, double y) {
    n += 1, sx += x, sy += y, sxx += x * x, syy += y * y, sxy += x * y;
  }
  double r() const {
    const double vx = sxx / n - (sx / n) * (sx / n), vy = syy / n - (sy / n) * (sy / n);
    return (sxy / n - (sx / n) * (sy / n)) / std::sqrt(vx * vy);
  }
};

// The mask statistics of a byte source at a threshold; returns what failed, one line each.
// 4 heads of 2 batches (H = 2), 128 rows x 512 keys each, seed and offset fixed. The keep rates
// always; the correlations with `correlations` (43 checks at 3 sigma in all, so that an ideal
// generator fails one of them in about 11% of samples: they run at the thresholds of the test
// below, whose one sample each passes, see docs/flash_attention.md).
std::vector<std::string> mask_statistics(const ByteSource& byte, uint32_t threshold,
                                         bool correlations = true) {
  constexpr uint64_t kSeed = 0x5EED5EED1234ull, kOffset = 41;
  constexpr uint32_t kHeads = 4, kH = 2, kRows = 128, kCols = 512;
  std::vector<std::string> failed;
  auto three_sigma = [&](const std::string& what, double got, double want, double n) {
    const double sigma = std::sqrt(want * (1.0 - want) / n);
    if (std::fabs(got - want) >= 3.0 * sigma) {
      failed.push_back(what + ": " + std::to_string(got) + " against " + std::to_string(want));
    }
  };
  const double keep_rate = 1.0 - threshold / 256.0;
  double n = 0, kept = 0, bits[8] = {}, kept_at[16] = {}, n_at[16] = {};
  // Relations: (d_row, d_col, d_head, d_offset, d_seed), each for the keep flags and the bytes.
  struct Relation {
    const char* name;
    uint32_t dr, dc, dh;
    uint64_t doff, dseed;
    Correlation keep, value;
  };
  Relation rel[] = {{"next key", 0, 1, 0, 0, 0, {}, {}},    {"next word", 0, 4, 0, 0, 0, {}, {}},
                    {"next draw", 0, 16, 0, 0, 0, {}, {}},  {"next row", 1, 0, 0, 0, 0, {}, {}},
                    {"diagonal", 1, 1, 0, 0, 0, {}, {}},    {"next head", 0, 0, 1, 0, 0, {}, {}},
                    {"next batch", 0, 0, kH, 0, 0, {}, {}}, {"next step", 0, 0, 0, 1, 0, {}, {}},
                    {"next seed", 0, 0, 0, 0, 1, {}, {}}};
  for (uint32_t bh = 0; bh < kHeads; ++bh) {
    for (uint32_t row = 0; row < kRows; ++row) {
      for (uint32_t col = 0; col < kCols; ++col) {
        const uint32_t x = byte(kSeed, kOffset, bh, row, col);
        const bool keep = x >= threshold;
        n += 1, kept += keep, kept_at[col % 16] += keep, n_at[col % 16] += 1;
        for (int b = 0; b < 8; ++b) bits[b] += (x >> b) & 1u;
        for (Relation& r : rel) {
          if (!correlations) break;
          const uint32_t y =
              byte(kSeed + r.dseed, kOffset + r.doff, bh + r.dh, row + r.dr, col + r.dc);
          r.keep.add(keep, y >= threshold);
          r.value.add(x, y);
        }
      }
    }
  }
  three_sigma("keep rate", kept / n, keep_rate, n);
  for (int b = 0; b < 8; ++b) three_sigma("bit " + std::to_string(b), bits[b] / n, 0.5, n);
  for (int j = 0; j < 16; ++j) {
    three_sigma("keep rate at byte " + std::to_string(j) + " of a draw", kept_at[j] / n_at[j],
                keep_rate, n_at[j]);
  }
  for (const Relation& r : rel) {
    if (!correlations) break;
    for (const Correlation* c : {&r.keep, &r.value}) {
      const double limit = 3.0 / std::sqrt(c->n), got = c->r();
      if (!(std::fabs(got) < limit)) {
        failed.push_back(std::string(r.name) + (c == &r.keep ? " (keep)" : " (byte)") +
                         ": r = " + std::to_string(got) + ", limit " + std::to_string(limit));
      }
    }
  }
  return failed;
}

bool any_contains(const std::vector<std::string>& lines, const std::string& needle) {
  for (const std::string& l : lines) {
    if (l.find(needle) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("attention dropout: the mask's keep rate and correlations are those of coin flips") {
  // Everything at the seed model's p (13/256) and at 128 (keep = the byte's top bit); the keep
  // rates at the extremes of the threshold too.
  for (uint32_t threshold : {13u, 128u, 1u, 255u}) {
    INFO("threshold " << threshold);
    const std::vector<std::string> failed =
        mask_statistics(real_byte, threshold, threshold == 13 || threshold == 128);
    for (const std::string& f : failed) FAIL_CHECK(f);
  }
}

TEST_CASE("attention dropout: the statistics fail deliberately bad generators") {
  // The counter itself: uniform bytes, every neighbour correlated.
  const auto counter = [](uint64_t, uint64_t offset, uint32_t bh, uint32_t row, uint32_t col) {
    return static_cast<uint32_t>(row * 512u + col + bh * 7u + offset) & 0xFFu;
  };
  std::vector<std::string> failed = mask_statistics(counter, 13);
  CHECK(any_contains(failed, "next key"));
  CHECK(any_contains(failed, "next row"));
  // The real mask with one coordinate left out: the relation along it fails.
  const auto no_head = [](uint64_t s, uint64_t o, uint32_t, uint32_t row, uint32_t col) {
    return real_byte(s, o, 0, row, col);
  };
  failed = mask_statistics(no_head, 13);
  CHECK(any_contains(failed, "next head"));
  CHECK(any_contains(failed, "next batch"));
  const auto no_offset = [](uint64_t s, uint64_t, uint32_t bh, uint32_t row, uint32_t col) {
    return real_byte(s, 0, bh, row, col);
  };
  CHECK(any_contains(mask_statistics(no_offset, 13), "next step"));
  // A word of one low product instead of a fold: byte 0 of every word then depends on the
  // label's byte 0 alone, and the bits of a byte are skewed.
  const auto low_product = [](uint64_t s, uint64_t o, uint32_t bh, uint32_t row, uint32_t col) {
    const DropoutHead head = DropoutKey::of(s, o).head(bh);
    const uint32_t label = head.row_label(row) ^ head.col_label(col >> 4);
    return ((label * 0xD2511F53u) >> (8 * (col & 3))) & 0xFFu;
  };
  CHECK_FALSE(mask_statistics(low_product, 13).empty());
  // Rows sharing one label: every row the same mask.
  const auto no_row = [](uint64_t s, uint64_t o, uint32_t bh, uint32_t, uint32_t col) {
    return real_byte(s, o, bh, 0, col);
  };
  CHECK(any_contains(mask_statistics(no_row, 13), "next row"));
}

TEST_CASE("attention dropout: p is quantized to 1/256 and the kept scale is 256 / (256 - t)") {
  for (int i = 0; i <= 2550; ++i) {
    const float p = static_cast<float>(i) / 2560.0f;  // [0, 0.996]
    const uint32_t t = AttentionDropout::threshold_for(p);
    REQUIRE(std::fabs(t / 256.0 - p) <= 0.5 / 256.0 + 1e-7);
    REQUIRE(AttentionDropout{0, 0, t}.keep_scale() == 256.0f / static_cast<float>(256 - t));
  }
  CHECK(AttentionDropout::threshold_for(0.05f) == 13);  // the seed model's 0.0508
  // p near 1 is capped at 255/256, so that the kept elements' scale stays finite.
  CHECK(AttentionDropout::threshold_for(0.997f) == 255);
  CHECK(AttentionDropout::threshold_for(0.9999f) == 255);
}

TEST_CASE("attention dropout: a draw is 16 keys of a row, one fold a word, the key from Philox") {
  const DropoutMask m(AttentionDropout{123, 4, 13});
  const DropoutHead head = m.key.head(3);
  // Byte j of the draw of (row, col16) is the byte of key 16 col16 + j.
  const DropoutDraw d = DropoutDraw::of(head.row_label(7) ^ head.col_label(2));
  for (int j = 0; j < 16; ++j) CHECK(head.byte(7, 32 + static_cast<uint32_t>(j)) == d.byte(j));
  CHECK(d.byte(5) == ((d.v[1] >> 8) & 0xFFu));
  // word w = lo ^ hi of label * word_mul(w)
  const uint32_t label = head.row_label(7) ^ head.col_label(2);
  const uint64_t product = static_cast<uint64_t>(label) * 0xD2511F53u;
  CHECK(d.v[0] == (static_cast<uint32_t>(product) ^ static_cast<uint32_t>(product >> 32)));
  // The launch key is Philox4x32-10's output for (seed, offset).
  const Philox4 r = philox4x32(123, attention_dropout_detail::kKeyIndex, 4);
  for (int w = 0; w < 4; ++w) CHECK(m.key.k[w] == r.v[w]);
  CHECK(m.keep(3, 7, 37) == (head.byte(7, 37) >= 13));
}

// ---- the kernels' masks, read back through the op --------------------------------------------
//
// With q = 0 every score is 0, so every visible key of a row gets the same probability, and the
// output is a sum of the kept values. Values that put key j0 + i D + d's bit in dimension d with
// weight 2^i (i < 6) make out[row][d] = keep_scale / n_row * (the row's 6 flags of dimension d as
// a binary number), n_row the keys the row sees: 6 D keys of the row read back from one output
// row, exactly (the number is at most 63, so bf16's 8 bits and the rounding of the scale leave
// it recoverable). The backward reads the transposed layout the same way: dv[key][d] = keep_scale
// p (the 6 flags of queries i0 + i D + d, i < 6, of that key), through dout. Only the mask decides
// these numbers, so the op on the GPU must read back the CPU's flags bit for bit.

namespace {

constexpr int kBits = 6;  // flags a number: 63 * 2^-8 relative error stays below 1/2

// [B, T, H, D] bf16 values: dimension d of row j0 + i D + d is 2^i for i < kBits, 0 elsewhere.
Tensor flag_weights(int64_t B, int64_t T, int64_t H, int64_t D, int64_t j0) {
  Tensor t = Tensor::zeros({B, T, H, D}, kFloat64);
  double* p = t.data<double>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = j0; j < std::min(T, j0 + kBits * D); ++j)
      for (int64_t h = 0; h < H; ++h) {
        p[((b * T + j) * H + h) * D + (j - j0) % D] = std::ldexp(1.0, int((j - j0) / D));
      }
  return t.to(kBFloat16);
}

// The flags' number the mask says: bit i = keep(row, j0 + i D + d) (keys past T or, causal,
// past the row count 0). transposed: keep(j0 + i D + d, row) instead (the backward's view).
double expected_flags(const DropoutMask& m, uint32_t bh, int64_t T, int64_t D, bool causal,
                      int64_t row, int64_t d, int64_t j0, bool transposed) {
  double x = 0;
  for (int i = 0; i < kBits; ++i) {
    const int64_t j = j0 + i * D + d;
    if (j >= T || (causal && (transposed ? j < row : j > row))) continue;
    const bool keep = transposed ? m.keep(bh, uint32_t(j), uint32_t(row))
                                 : m.keep(bh, uint32_t(row), uint32_t(j));
    x += keep ? std::ldexp(1.0, i) : 0.0;
  }
  return x;
}

// Reads the forward's mask (keys j0 ..) and the backward's (queries j0 ..) back through the op
// on `device` and checks every flag against the CPU's mask function.
void check_mask_readback(Device device, int64_t B, int64_t T, int64_t H, int64_t D, bool causal,
                         int64_t j0, bool backward) {
  INFO("B=" << B << " T=" << T << " H=" << H << " D=" << D << " causal=" << causal << " j0=" << j0
            << " backward=" << backward);
  AttentionOptions o{causal, 0.05f, 977 + uint64_t(T), 3 + uint64_t(D), 0.0f};
  const DropoutMask m(
      AttentionDropout{o.seed, o.offset, AttentionDropout::threshold_for(o.dropout_p)});
  const double ks = m.keep_scale();
  Tensor q = Tensor::zeros({B, T, H, D}, kBFloat16), k = testing::random_uniform({B, T, H, D}, 5);
  k = k.to(kBFloat16);
  Tensor w = flag_weights(B, T, H, D, j0);
  auto on = [&](const Tensor& t) { return device.is_cuda() ? t.cuda() : t; };
  Tensor lse;
  Tensor zeros = Tensor::zeros({B, T, H, D}, kBFloat16);
  // Forward: v carries the weights. Backward: dout does, v = 0 (so out = 0 and delta = 0).
  Tensor out = ops::attention_forward(on(q), on(k), on(backward ? zeros : w), o, &lse);
  Tensor got;
  if (backward) {
    ops::AttentionGrads g = ops::attention_backward(on(q), on(k), on(zeros), out, lse, on(w), o);
    got = g.dv.to(kFloat64).cpu();
  } else {
    got = out.to(kFloat64).cpu();
  }
  const double* gp = got.data<double>();
  int64_t mismatches = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t row = 0; row < T; ++row)
        for (int64_t d = 0; d < D; ++d) {
          // Forward: 1 / n_row; backward: p = 1 / T (not causal), rounded to bf16 as P is.
          const double n_row = causal ? double(row + 1) : double(T);
          const double unit = ks / n_row;
          const double value = gp[((b * T + row) * H + h) * D + d];
          const uint32_t bh = uint32_t(b * H + h);
          const double want = expected_flags(m, bh, T, D, causal, row, d, j0, backward);
          if (std::fabs(value / unit - want) >= 0.5) {
            if (++mismatches <= 5) {
              INFO("b=" << b << " h=" << h << " row=" << row << " d=" << d << ": read "
                        << value / unit << ", mask says " << want);
              CHECK(false);
            }
          }
        }
  CHECK(mismatches == 0);
}

}  // namespace

TEST_CASE("attention dropout: the CPU op's mask reads back through its outputs") {
  // The read-back itself, on the CPU reference: what the CUDA case below relies on.
  check_mask_readback(Device::cpu(), 2, 37, 3, 8, true, 0, false);
  check_mask_readback(Device::cpu(), 1, 100, 2, 16, false, 40, false);
  check_mask_readback(Device::cpu(), 1, 64, 2, 8, false, 16, true);
}

CUDA_TEST_CASE("cuda: attention dropout, every kernel's mask equals the CPU's bit for bit") {
  // Forward at D = 8 (the lazy kernel's packed masks) and D = 16 (dropout_rows); backward
  // (dv: the dK/dV kernel's transposed flags) at D = 8 and 16. Odd T, several heads and
  // batches, keys and queries far from 0, causal or not.
  const Device gpu = Device::cuda();
  check_mask_readback(gpu, 2, 37, 3, 8, true, 0, false);
  check_mask_readback(gpu, 2, 1000, 3, 8, false, 903, false);
  check_mask_readback(gpu, 1, 4099, 2, 8, true, 4050, false);
  check_mask_readback(gpu, 2, 100, 3, 16, false, 7, false);
  check_mask_readback(gpu, 1, 1000, 2, 16, true, 500, false);
  check_mask_readback(gpu, 2, 64, 3, 8, false, 16, true);
  check_mask_readback(gpu, 1, 256, 2, 8, false, 200, true);
  check_mask_readback(gpu, 2, 128, 3, 16, false, 30, true);
  check_mask_readback(gpu, 1, 1024, 2, 16, false, 931, true);
}
