// safetensors reading and writing (format in safetensors.h).
#include "tensor/safetensors.h"

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

namespace mt {

namespace {

// The format's dtype codes.
const char* safetensors_code(DType dtype) {
  switch (dtype) {
    case kFloat32: return "F32";
    case kBFloat16: return "BF16";
    case kFloat64: return "F64";
    case kInt32: return "I32";
    case kInt64: return "I64";
  }
  return "?";
}

DType dtype_from_code(const std::string& code, const std::string& path, const std::string& name) {
  for (DType d : {kFloat32, kBFloat16, kFloat64, kInt32, kInt64}) {
    if (code == safetensors_code(d)) return d;
  }
  FAIL("{}: tensor '{}' has dtype '{}', which this framework does not support "
       "(F32, BF16, F64, I32, I64)", path, name, code);
}

// The header is padded with spaces to a multiple of 8 bytes, as the reference writer does, so
// the tensor data that follows stays aligned.
std::string make_header(const std::map<std::string, Tensor>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    CHECK(t.defined(), "save_safetensors: tensor '{}' is undefined", name);
    header[name] = {{"dtype", safetensors_code(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

}  // namespace

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const std::string header = make_header(tensors, metadata);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    CHECK(out.good(), "save_safetensors: cannot open '{}' for writing", tmp);
    uint64_t n = header.size();
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    for (const auto& [name, t] : tensors) {
      Tensor host = t.cpu().contiguous();
      out.write(static_cast<const char*>(host.raw_data()), static_cast<std::streamsize>(host.nbytes()));
    }
    out.flush();
    CHECK(out.good(), "save_safetensors: write to '{}' failed (disk full?)", tmp);
  }
  CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "save_safetensors: cannot rename '{}' to '{}'",
        tmp, path);
}

SafetensorsFile load_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  CHECK(in.good(), "load_safetensors: cannot open '{}'", path);
  const uint64_t file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  CHECK(file_size >= 8, "{}: truncated: {} bytes, too short for the 8-byte header length", path,
        file_size);
  unsigned char len[8];
  in.read(reinterpret_cast<char*>(len), 8);
  uint64_t header_size = 0;
  for (int i = 0; i < 8; ++i) header_size |= static_cast<uint64_t>(len[i]) << (8 * i);
  CHECK(header_size <= file_size - 8, "{}: header length {} exceeds the file ({} bytes): truncated "
        "or not a safetensors file", path, header_size, file_size);
  std::string text(header_size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(header_size));

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    FAIL("{}: the header is not valid JSON: {}", path, e.what());
  }
  CHECK(header.is_object(), "{}: the header must be a JSON object", path);

  SafetensorsFile result;
  const uint64_t data_size = file_size - 8 - header_size;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      for (const auto& [k, v] : entry.items()) {
        CHECK(v.is_string(), "{}: metadata value '{}' is not a string", path, k);
        result.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    CHECK(entry.is_object() && entry.contains("dtype") && entry.contains("shape") &&
              entry.contains("data_offsets"),
          "{}: tensor '{}' needs dtype, shape and data_offsets", path, name);
    const DType dtype = dtype_from_code(entry["dtype"].get<std::string>(), path, name);
    const Shape shape = entry["shape"].get<Shape>();
    const auto offsets = entry["data_offsets"].get<std::vector<uint64_t>>();
    CHECK(offsets.size() == 2 && offsets[0] <= offsets[1], "{}: tensor '{}' has bad data_offsets",
          path, name);
    const uint64_t expected = static_cast<uint64_t>(shape_numel(shape)) * dtype_size(dtype);
    CHECK(offsets[1] - offsets[0] == expected,
          "{}: tensor '{}' is {}{} ({} bytes) but its data_offsets span {} bytes", path, name,
          dtype_name(dtype), shape_str(shape), expected, offsets[1] - offsets[0]);
    CHECK(offsets[1] <= data_size, "{}: tensor '{}' ends at byte {} but the data section has {} "
          "bytes: truncated file", path, name, offsets[1], data_size);
    Tensor t = Tensor::empty(shape, dtype);
    in.seekg(static_cast<std::streamoff>(8 + header_size + offsets[0]));
    in.read(static_cast<char*>(t.raw_data()), static_cast<std::streamsize>(expected));
    CHECK(in.good(), "{}: read of tensor '{}' failed", path, name);
    result.tensors.emplace(name, t);
  }
  return result;
}

}  // namespace mt
