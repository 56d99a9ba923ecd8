#include "checkpoint/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <utility>
#include <nlohmann/json.hpp>

#include "checkpoint/atomic_file.h"
#include "checkpoint/checksum.h"
#include "core/error.h"

namespace tessera::checkpoint {

namespace {

using nlohmann::json;

// The reference implementation refuses headers above 100 MB; so do we, so that a corrupted size
// field fails fast instead of allocating gigabytes.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

void put_u64_le(uint64_t v, unsigned char out[8]) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<unsigned char>(v >> (8 * i));
}

uint64_t get_u64_le(const unsigned char in[8]) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | in[i];
  return v;
}

}  // namespace

std::string safetensors_dtype(DType dtype) {
  switch (dtype) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::bf16: return "BF16";
    case DType::i32: return "I32";
  }
  return "?";
}

DType dtype_from_safetensors(const std::string& name, const std::string& what) {
  if (name == "F32") return DType::f32;
  if (name == "F64") return DType::f64;
  if (name == "BF16") return DType::bf16;
  if (name == "I32") return DType::i32;
  TESSERA_FAIL(what, ": unsupported dtype \"", name, "\" (expected F32, F64, BF16 or I32)");
}

void SafetensorsWriter::add(const std::string& name, const Tensor& tensor) {
  TESSERA_CHECK(tensor.device().is_cpu(), "safetensors: tensor ", name, " must be on the host");
  TESSERA_CHECK(name != "__metadata__", "safetensors: \"__metadata__\" is reserved, not a tensor name");
  for (const auto& [existing, t] : tensors_) TESSERA_CHECK(existing != name, "safetensors: tensor ", name, " added twice");
  tensors_.emplace_back(name, tensor);
}

SafetensorsWriter::Written SafetensorsWriter::write(const std::filesystem::path& path) const {
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors_) {
    header[name] = {{"dtype", safetensors_dtype(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + t.bytes()}}};
    offset += t.bytes();
  }
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  // Pad the header with spaces (the format allows it) so the tensor bytes start 8-byte aligned.
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  unsigned char size[8];
  put_u64_le(text.size(), size);

  // The checksums are taken from the bytes as they go out, so no second pass reads them back.
  Written written;
  ChecksumStream file_sum;
  AtomicFile out(path);
  auto put = [&](const void* data, size_t bytes) {
    out.write(data, bytes);
    file_sum.update(data, bytes);
    written.bytes += bytes;
  };
  put(size, 8);
  put(text.data(), text.size());
  for (const auto& [name, t] : tensors_) {
    put(t.raw(), t.bytes());
    written.tensor_xxh3[name] = checksum(t.raw(), t.bytes());
  }
  written.xxh3 = file_sum.hex();
  out.commit();
  return written;
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  TESSERA_CHECK(fd >= 0, "cannot open ", path, ": ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    TESSERA_FAIL("cannot stat ", path, ": ", std::strerror(errno));
  }
  map_bytes_ = static_cast<size_t>(st.st_size);
  if (map_bytes_ > 0) map_ = ::mmap(nullptr, map_bytes_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    TESSERA_FAIL("cannot map ", path, ": ", std::strerror(errno));
  }
  // From here on the destructor will not run if we throw, so unmap on failure by hand.
  try {
    const auto* bytes = static_cast<const unsigned char*>(map_);
    TESSERA_CHECK(map_bytes_ >= 8, "truncated safetensors file ", path, ": ", map_bytes_,
                  " bytes, fewer than the 8-byte header size");
    const uint64_t header_bytes = get_u64_le(bytes);
    TESSERA_CHECK(header_bytes <= kMaxHeaderBytes, "corrupt safetensors file ", path, ": header size ", header_bytes,
                  " exceeds the ", kMaxHeaderBytes, "-byte limit");
    TESSERA_CHECK(8 + header_bytes <= map_bytes_, "truncated safetensors file ", path, ": header of ", header_bytes,
                  " bytes but the file has only ", map_bytes_, " bytes");
    const uint64_t data_bytes = map_bytes_ - 8 - header_bytes;
    data_ = reinterpret_cast<const std::byte*>(bytes + 8 + header_bytes);

    json header;
    try {
      header = json::parse(bytes + 8, bytes + 8 + header_bytes);
    } catch (const json::exception& e) {
      TESSERA_FAIL("corrupt safetensors file ", path, ": header is not JSON (", e.what(), ")");
    }
    TESSERA_CHECK(header.is_object(), "corrupt safetensors file ", path, ": header is not a JSON object");

    uint64_t described = 0;
    for (const auto& [name, value] : header.items()) {
      const std::string what = "tensor " + name + " in " + path.string();
      if (name == "__metadata__") {
        TESSERA_CHECK(value.is_object(), "corrupt safetensors file ", path, ": __metadata__ is not an object");
        for (const auto& [k, v] : value.items()) {
          TESSERA_CHECK(v.is_string(), "corrupt safetensors file ", path, ": metadata ", k, " is not a string");
          metadata_[k] = v.get<std::string>();
        }
        continue;
      }
      try {
        Entry e;
        e.dtype = dtype_from_safetensors(value.at("dtype").get<std::string>(), what);
        e.shape = value.at("shape").get<Shape>();
        const auto offsets = value.at("data_offsets").get<std::vector<uint64_t>>();
        TESSERA_CHECK(offsets.size() == 2 && offsets[0] <= offsets[1], what, ": bad data_offsets");
        e.begin = offsets[0];
        e.end = offsets[1];
        for (int64_t d : e.shape) TESSERA_CHECK(d >= 0, what, ": negative dimension in shape ", shape_string(e.shape));
        const uint64_t want = static_cast<uint64_t>(shape_numel(e.shape)) * dtype_size(e.dtype);
        TESSERA_CHECK(e.end - e.begin == want, what, ": data_offsets span ", e.end - e.begin, " bytes but shape ",
                      shape_string(e.shape), " of ", safetensors_dtype(e.dtype), " needs ", want);
        TESSERA_CHECK(e.end <= data_bytes, "truncated safetensors file: ", what, " ends at byte ", e.end,
                      " of the data but only ", data_bytes, " bytes follow the header");
        described = std::max(described, e.end);
        entries_.emplace(name, std::move(e));
      } catch (const json::exception& ex) {
        TESSERA_FAIL("corrupt safetensors file: ", what, ": ", ex.what());
      }
    }
    TESSERA_CHECK(described == data_bytes, "corrupt safetensors file ", path, ": ", data_bytes,
                  " bytes follow the header but its tensors describe ", described);
  } catch (...) {
    if (map_) ::munmap(map_, map_bytes_);
    throw;
  }
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept
    : path_(std::move(other.path_)),
      map_(std::exchange(other.map_, nullptr)),
      map_bytes_(other.map_bytes_),
      data_(other.data_),
      entries_(std::move(other.entries_)),
      metadata_(std::move(other.metadata_)) {}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_bytes_);
}

const SafetensorsFile::Entry& SafetensorsFile::entry(const std::string& name) const {
  const auto it = entries_.find(name);
  TESSERA_CHECK(it != entries_.end(), "safetensors file ", path_, " holds no tensor ", name);
  return it->second;
}

Tensor SafetensorsFile::read(const std::string& name) const {
  const Entry& e = entry(name);
  Tensor t = Tensor::empty(e.shape, e.dtype);
  if (e.end > e.begin) std::memcpy(t.raw(), data(e), e.end - e.begin);
  return t;
}

}  // namespace tessera::checkpoint
