#include "data/synthetic_task.h"

#include <algorithm>

#include "core/error.h"
#include "core/philox.h"

namespace tessera::data {

SyntheticTask::Kind SyntheticTask::parse_kind(const std::string& name) {
  if (name == "copy") return Kind::copy;
  if (name == "reverse") return Kind::reverse;
  TESSERA_FAIL("--task: '", name, "' is not a synthetic task (copy, reverse)");
}

model::TokenPair SyntheticTask::pair(uint32_t split, int64_t index) const {
  const PhiloxKey key = philox_key(seed, split);
  auto draw = [&](uint32_t slot) {
    return philox4x32({static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32), slot,
                       static_cast<uint32_t>(RngPurpose::data_order)},
                      key);
  };
  const int64_t len = min_len + draw(0).x[0] % static_cast<uint32_t>(max_len - min_len + 1);
  model::TokenPair p;
  p.src.resize(len);
  for (int64_t j = 0; j < len; ++j)
    p.src[j] = 4 + static_cast<int32_t>(draw(static_cast<uint32_t>(j + 1)).x[0] % static_cast<uint32_t>(vocab_size - 4));
  p.tgt = p.src;
  if (kind == Kind::reverse) std::reverse(p.tgt.begin(), p.tgt.end());
  return p;
}

std::vector<model::TokenPair> SyntheticTask::pairs(uint32_t split, int64_t first, int64_t count) const {
  std::vector<model::TokenPair> out;
  out.reserve(count);
  for (int64_t i = 0; i < count; ++i) out.push_back(pair(split, first + i));
  return out;
}

}  // namespace tessera::data
