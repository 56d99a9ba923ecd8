// Which block of which tensor each shard file of a checkpoint holds. Tensor-parallel rank r
// writes shard r: for every parameter its slice r (a replicated parameter only in shard 0),
// without rows of vocabulary padding, under the parameter's name, and Adam's moments of the same
// block under "adam.m/<name>" and "adam.v/<name>". Every rank can compute every shard's list, so
// the manifest is written without asking the ranks what they hold.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "checkpoint/box.h"
#include "checkpoint/manifest.h"
#include "checkpoint/safetensors.h"
#include "model/parameters.h"

namespace tessera::checkpoint {

// "model-tp{r}-of-{tp}.safetensors".
std::string shard_name(int tp_rank, int tp_size);

// The global shape without vocabulary padding: rows past valid_rows exist only in a layout.
Shape unpadded_shape(const model::ParamInfo& p);

// The box of the (padded) global tensor that partition slice `part` of `p` covers.
Box slice_box(const model::ParamInfo& p, int part);

// The same box without padded rows; nullopt when the slice is all padding.
std::optional<Box> real_part(const model::ParamInfo& p, const Box& b);

// What a parameter is saved as: its value, or one of Adam's moments.
enum class Role { value, first_moment, second_moment };

// The key a parameter is saved under in one role: "<name>", "adam.m/<name>", "adam.v/<name>".
std::string key_of(const std::string& name, Role role);
// The roles saved for each parameter: the value, and both moments when with_adam.
std::vector<Role> roles(bool with_adam);

// One tensor of a shard file.
struct ShardEntry {
  std::string key;
  int param = 0;  // id in the store
  Role role = Role::value;
  Box box;        // the block of the unpadded global tensor it holds
};

// The tensors of shard `tp_rank` of a `tp_size`-way layout, in file order.
std::vector<ShardEntry> shard_entries(const model::ParameterStore& store, int tp_rank, int tp_size, bool with_adam);

// The manifest of a `tp_size`-way checkpoint of `store`'s model: every shard and, per tensor, its
// unpadded shape, dtype and blocks. Step, config and checksums are left for the writer to fill.
Manifest describe_layout(const model::ParameterStore& store, int tp_size, bool with_adam);

// Records what write() reported for shard `file` in the manifest: its size and checksum, and the
// checksum of each of its blocks.
void record_written_shard(Manifest& manifest, const std::string& file, const SafetensorsWriter::Written& written);

}  // namespace tessera::checkpoint
