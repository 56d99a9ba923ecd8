#include "checkpoint/shard_layout.h"

namespace tessera::checkpoint {

std::string shard_name(int tp_rank, int tp_size) {
  return "model-tp" + std::to_string(tp_rank) + "-of-" + std::to_string(tp_size) + ".safetensors";
}

Shape unpadded_shape(const model::ParamInfo& p) {
  Shape s = p.global_shape;
  if (p.valid_rows >= 0) s.at(0) = p.valid_rows;
  return s;
}

Box slice_box(const model::ParamInfo& p, int part) {
  Box b{Shape(p.local_shape.size(), 0), p.local_shape};
  if (!p.partition.is_replicated()) b.start[p.partition.dim] = part * p.local_shape[p.partition.dim];
  return b;
}

std::optional<Box> real_part(const model::ParamInfo& p, const Box& b) {
  const Shape shape = unpadded_shape(p);
  return intersect(b, Box{Shape(shape.size(), 0), shape});
}

std::string key_of(const std::string& name, Role role) {
  switch (role) {
    case Role::value: return name;
    case Role::first_moment: return "adam.m/" + name;
    case Role::second_moment: return "adam.v/" + name;
  }
  return name;
}

std::vector<Role> roles(bool with_adam) {
  if (!with_adam) return {Role::value};
  return {Role::value, Role::first_moment, Role::second_moment};
}

std::vector<ShardEntry> shard_entries(const model::ParameterStore& store, int tp_rank, int tp_size, bool with_adam) {
  std::vector<ShardEntry> entries;
  for (size_t id = 0; id < store.size(); ++id) {
    const model::ParamInfo& p = store.info(static_cast<int>(id));
    TESSERA_CHECK(p.partition.is_replicated() || p.partition.parts == tp_size, "parameter ", p.name, " is split into ",
                  p.partition.parts, " parts but the tensor-parallel size is ", tp_size);
    if (p.partition.is_replicated() && tp_rank != 0) continue;  // shard 0 holds replicated parameters
    const std::optional<Box> real = real_part(p, slice_box(p, tp_rank));
    if (!real) continue;  // slice tp_rank of this parameter is all vocabulary padding
    for (Role role : roles(with_adam)) entries.push_back({key_of(p.name, role), static_cast<int>(id), role, *real});
  }
  return entries;
}

Manifest describe_layout(const model::ParameterStore& store, int tp_size, bool with_adam) {
  Manifest m;
  m.tensor_parallel = tp_size;
  for (int r = 0; r < tp_size; ++r) {
    const std::string file = shard_name(r, tp_size);
    m.shards.push_back({file, 0, ""});
    for (const ShardEntry& e : shard_entries(store, r, tp_size, with_adam)) {
      TensorRecord& record = m.tensors[e.key];
      record.shape = unpadded_shape(store.info(e.param));
      record.dtype = safetensors_dtype(store.dtype());
      record.slices.push_back({file, e.box, ""});
    }
  }
  return m;
}

void record_written_shard(Manifest& m, const std::string& file, const SafetensorsWriter::Written& written) {
  for (ShardRecord& shard : m.shards)
    if (shard.file == file) {
      shard.bytes = written.bytes;
      shard.xxh3 = written.xxh3;
    }
  for (const auto& [key, sum] : written.tensor_xxh3)
    for (ShardSlice& s : m.tensors.at(key).slices)
      if (s.file == file) s.xxh3 = sum;
}

}  // namespace tessera::checkpoint
