#include "checkpoint/checkpoint_reader.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <optional>

#include "checkpoint/checkpoint.h"
#include "checkpoint/verify.h"
#include "core/error.h"

namespace tessera::checkpoint {

namespace {

// Drops the pages of [data, data + bytes) from this process's mapping of a read-only file: they
// stay in the page cache, and a later read faults them back in. Whole pages around the range are
// dropped, which is harmless for the same reason.
void release_pages(const std::byte* data, size_t bytes) {
  if (bytes == 0) return;
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes + page - 1) / page * page;
  ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);  // advice only: failure costs memory
}

}  // namespace

CheckpointReader::CheckpointReader(const std::filesystem::path& dir)
    : dir_(resolve_checkpoint(dir)), manifest_(read_manifest(dir_)) {}

const TensorRecord& CheckpointReader::record(const std::string& key) const {
  const auto it = manifest_.tensors.find(key);
  TESSERA_CHECK(it != manifest_.tensors.end(), "checkpoint ", dir_.string(), " holds no tensor ", key);
  return it->second;
}

const SafetensorsFile& CheckpointReader::shard(const std::string& file) {
  auto it = files_.find(file);
  if (it == files_.end()) it = files_.emplace(file, open_verified_shard(dir_, manifest_, file)).first;
  return it->second;
}

Tensor CheckpointReader::read(const std::string& key, const Box& box, DType dtype) {
  const TensorRecord& r = record(key);
  const Box whole{Shape(r.shape.size(), 0), r.shape};
  TESSERA_CHECK(box.start.size() == r.shape.size() && (r.shape.empty() || intersect(box, whole) == box),
                "checkpoint ", dir_.string(), ": block ", box_string(box), " lies outside tensor ", key, " of shape ",
                shape_string(r.shape));
  Tensor out = Tensor::empty(box.extent, dtype);
  int64_t copied = 0;
  for (const ShardSlice& s : r.slices) {
    const std::optional<Box> overlap = r.shape.empty() ? std::optional<Box>(box) : intersect(box, s.box);
    if (!overlap) continue;
    const SafetensorsFile& f = shard(s.file);
    const SafetensorsFile::Entry& e = f.entry(key);
    TESSERA_CHECK(e.shape == s.box.extent, "shard ", f.path().string(), " holds ", key, " with shape ",
                  shape_string(e.shape), " but the manifest says ", shape_string(s.box.extent));
    copy_box(f.data(e), e.dtype, s.box, out.raw(), dtype, box, *overlap);
    release_pages(f.data(e), e.end - e.begin);
    copied += overlap->numel();
  }
  TESSERA_CHECK(copied == box.numel(), "checkpoint ", dir_.string(), " does not cover block ", box_string(box),
                " of tensor ", key, ": its slices supply ", copied, " of ", box.numel(), " elements");
  return out;
}

Tensor CheckpointReader::read(const std::string& key, DType dtype) {
  const Shape shape = record(key).shape;
  return read(key, Box{Shape(shape.size(), 0), shape}, dtype);
}

}  // namespace tessera::checkpoint
