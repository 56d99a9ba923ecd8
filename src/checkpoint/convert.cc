#include "checkpoint/convert.h"

#include "checkpoint/checkpoint_reader.h"
#include "checkpoint/model_layout.h"
#include "checkpoint/offline_writer.h"
#include "checkpoint/shard_layout.h"
#include "core/error.h"

namespace tessera::checkpoint {

ConvertReport convert_checkpoint(const std::filesystem::path& source, const std::filesystem::path& out,
                                 const ConvertOptions& o) {
  TESSERA_CHECK(o.dtype == DType::f32 || o.dtype == DType::bf16, "--dtype: must be f32 or bf16, got ",
                dtype_name(o.dtype));
  CheckpointReader reader(source);
  const Manifest& src = reader.manifest();
  const train::TrainOptions trained = trained_options(src, reader.dir());
  const model::ParameterStore store = declare_parameters(trained.model, o.tensor_parallel);
  check_same_model(src, reader.dir(), store);
  const bool with_adam = !o.weights_only && src.optimizer_step >= 0;

  Manifest m = describe_layout(store, o.tensor_parallel, with_adam);
  m.step = src.step;
  m.optimizer_step = with_adam ? src.optimizer_step : -1;
  m.data_parallel = 1;
  m.config = src.config;
  m.sampler_state = src.sampler_state;
  OfflineCheckpointWriter writer(out, std::move(m));

  ConvertReport report{reader.dir(), out, src.step, src.tensor_parallel, with_adam, 0, 0};
  for (int r = 0; r < o.tensor_parallel; ++r) {
    ShardSnapshot shard;
    shard.file = shard_name(r, o.tensor_parallel);
    shard.tp_rank = r;
    shard.tp_size = o.tensor_parallel;
    shard.step = src.step;
    for (const ShardEntry& e : shard_entries(store, r, o.tensor_parallel, with_adam)) {
      shard.tensors.emplace_back(e.key, reader.read(e.key, e.box, o.dtype));
      report.tensors += 1;
      report.bytes += static_cast<int64_t>(shard.tensors.back().second.bytes());
    }
    writer.write(shard);  // the shard's tensors are released before the next one is read
  }
  report.out = writer.commit();
  return report;
}

}  // namespace tessera::checkpoint
