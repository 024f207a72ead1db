// safetensors: round trip, the exact byte layout, and clear errors on damaged files.
#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>

#include "tensor/random.h"
#include "tensor/safetensors.h"
#include "tests/test_util.h"

using namespace mt;

namespace {
std::string temp_path(const char* name) { return fmt::format("/tmp/mt_test_{}_{}", name, ::getpid()); }
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
std::string with_length(const std::string& header) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  return out + header;
}
}  // namespace

TEST_SUITE("tensor") {

TEST_CASE("safetensors round trip keeps names, dtypes, shapes, values and metadata") {
  Generator gen(5);
  std::map<std::string, Tensor> tensors{
      {"layers.0.attn.Wqkv.weight", Tensor::randn({192, 64}, gen)},
      {"bf", Tensor::randn({3, 5}, gen).to(kBFloat16)},
      {"f64", Tensor::randn({7}, gen, kFloat64)},
      {"steps", Tensor::from_vector<int64_t>({1, 2, 3}, {3})},
      {"transposed", Tensor::randn({4, 6}, gen).transpose(0, 1)},
  };
  const std::string path = temp_path("roundtrip");
  save_safetensors(path, tensors, {{"format", "pt"}});
  SafetensorsFile loaded = load_safetensors(path);
  CHECK(loaded.metadata.at("format") == "pt");
  REQUIRE(loaded.tensors.size() == tensors.size());
  for (const auto& [name, t] : tensors) {
    const Tensor& got = loaded.tensors.at(name);
    CHECK(got.dtype() == t.dtype());
    CHECK(got.shape() == t.shape());
    CHECK(got.to_vector<double>() == t.to_vector<double>());
  }
  std::remove(path.c_str());
}

TEST_CASE("safetensors byte layout: length, padded JSON header, little-endian data") {
  const std::string path = temp_path("layout");
  save_safetensors(path, {{"x", Tensor::from_vector<float>({1.0f, -2.0f}, {2})}});
  const std::string bytes = read_bytes(path);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  CHECK(n % 8 == 0);
  CHECK(bytes.size() == 8 + n + 8);
  CHECK(bytes.substr(8, n).find(R"("x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})") !=
        std::string::npos);
  CHECK(bytes.substr(8 + n, 4) == std::string("\x00\x00\x80\x3f", 4));  // 1.0f
  std::remove(path.c_str());
}

TEST_CASE("safetensors errors: truncated, bad header, sizes that don't add up, bad dtype") {
  const std::string path = temp_path("bad");
  write_bytes(path, "abc");
  CHECK_THROWS_WITH_TEXT(load_safetensors(path), "truncated");
  write_bytes(path, with_length("{\"x\": [1,") + "rest");
  CHECK_THROWS_WITH_TEXT(load_safetensors(path), "not valid JSON");
  write_bytes(path, with_length(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})") +
                        std::string(8, '\0'));
  CHECK_THROWS_WITH_TEXT(load_safetensors(path), "data_offsets span 8 bytes");
  write_bytes(path, with_length(R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})") +
                        std::string(8, '\0'));
  CHECK_THROWS_WITH_TEXT(load_safetensors(path), "truncated file");
  write_bytes(path, with_length(R"({"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})") + "a");
  CHECK_THROWS_WITH_TEXT(load_safetensors(path), "dtype 'U8'");
  std::string huge(8, '\xff');
  write_bytes(path, huge);
  CHECK_THROWS_WITH_TEXT(load_safetensors(path), "exceeds the file");
  CHECK_THROWS_WITH_TEXT(load_safetensors(path + ".missing"), "cannot open");
  std::remove(path.c_str());
}

}  // TEST_SUITE("tensor")
