#include "checkpoint/model_layout.h"

#include "checkpoint/shard_layout.h"
#include "core/error.h"
#include "model/transformer.h"
#include "parallel/layout_communicator.h"

namespace tessera::checkpoint {

train::TrainOptions trained_options(const Manifest& manifest, const std::filesystem::path& dir) {
  TESSERA_CHECK(!manifest.config.empty(), "checkpoint ", dir.string(),
                " has no configuration in its manifest, so its model cannot be declared");
  return train::parse_config_text(manifest.config, (dir / kManifestName).string());
}

model::ParameterStore declare_parameters(const model::ModelConfig& cfg, int tensor_parallel) {
  TESSERA_CHECK(tensor_parallel >= 1, "--tensor-parallel: must be at least 1, got ", tensor_parallel);
  cfg.validate(tensor_parallel);
  parallel::LayoutCommunicator tp(0, tensor_parallel);
  model::ParameterStore store;
  model::Transformer declare(cfg, store, tp);  // declares and is done: nothing runs
  return store;
}

void check_same_model(const Manifest& manifest, const std::filesystem::path& dir, const model::ParameterStore& store) {
  size_t values = 0;
  for (const auto& [key, record] : manifest.tensors) {
    if (key.starts_with("adam.")) continue;
    ++values;
    const int id = store.find(key);
    TESSERA_CHECK(id >= 0, "checkpoint ", dir.string(), " holds tensor ", key,
                  " that the model of its configuration does not have");
    const Shape want = unpadded_shape(store.info(id));
    TESSERA_CHECK(record.shape == want, "checkpoint ", dir.string(), ": tensor ", key, " has shape ",
                  shape_string(record.shape), " but the model of its configuration declares ", shape_string(want));
  }
  for (const model::ParamInfo& p : store.params())
    TESSERA_CHECK(manifest.tensors.count(p.name) != 0, "parameter ", p.name, " is missing from checkpoint ",
                  dir.string());
  TESSERA_CHECK(values == store.size(), "checkpoint ", dir.string(), " holds ", values, " values but the model declares ",
                store.size());
}

}  // namespace tessera::checkpoint
