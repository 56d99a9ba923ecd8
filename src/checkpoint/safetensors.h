// The safetensors file format (https://github.com/huggingface/safetensors), written and read
// without Python:
//
//   [8 bytes: N, little-endian u64] [N bytes: JSON header] [tensor bytes]
//   header = {"<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//             "__metadata__": {"<key>": "<string value>"}}
//
// Offsets count bytes from the start of the tensor bytes; tensors are row-major and
// little-endian. The reader memory-maps the file, so reading a slice touches only its pages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace tessera::checkpoint {

// "F32", "F64", "I32", "BF16"; and back, throwing naming `what` for any other dtype string.
std::string safetensors_dtype(DType dtype);
DType dtype_from_safetensors(const std::string& name, const std::string& what);

class SafetensorsWriter {
 public:
  // Adds a host tensor; it must stay alive (and unchanged) until write() returns.
  void add(const std::string& name, const Tensor& tensor);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  // What write() put on disk: the file's length and checksum, and each tensor's data checksum.
  struct Written {
    uint64_t bytes = 0;
    std::string xxh3;
    std::map<std::string, std::string> tensor_xxh3;
  };
  // Writes the file atomically (temporary name, fsync, rename).
  Written write(const std::filesystem::path& path) const;

 private:
  std::vector<std::pair<std::string, Tensor>> tensors_;
  std::map<std::string, std::string> metadata_;
};

class SafetensorsFile {
 public:
  struct Entry {
    DType dtype;
    Shape shape;
    uint64_t begin = 0, end = 0;  // byte range within the tensor bytes
  };

  // Maps the file and validates the header size, every entry's dtype, shape and offsets, and
  // the file length; errors name the file and, where one is at fault, the tensor.
  explicit SafetensorsFile(const std::filesystem::path& path);
  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) = delete;
  SafetensorsFile(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::filesystem::path& path() const { return path_; }
  const std::map<std::string, Entry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Throws naming the file when it holds no tensor `name`.
  const Entry& entry(const std::string& name) const;
  // The first byte of a tensor's data.
  const std::byte* data(const Entry& e) const { return data_ + e.begin; }
  // A host copy of a whole tensor.
  Tensor read(const std::string& name) const;

 private:
  std::filesystem::path path_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  const std::byte* data_ = nullptr;
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace tessera::checkpoint
