#include "checkpoint/export.h"

#include <cmath>

#include "checkpoint/atomic_file.h"
#include "checkpoint/checkpoint_reader.h"
#include "checkpoint/model_layout.h"
#include "checkpoint/safetensors.h"
#include "core/error.h"
#include "core/option_values.h"
#include "model/layer_norm.h"

namespace tessera::checkpoint {

namespace fs = std::filesystem;

namespace {

// A float option as the configuration writes it (0.1, not 0.10000000149011612).
double as_written(float v) { return std::stod(exact_text(v)); }

}  // namespace

nlohmann::ordered_json export_config(const train::TrainOptions& trained, int64_t step) {
  const model::ModelConfig& c = trained.model;
  return {
      {"format", "tessera-export"},
      {"naming_scheme_version", kExportNamingVersion},
      {"step", step},
      {"vocab_size", c.vocab_size},
      {"d_model", c.d_model},
      {"d_ff", c.d_ff},
      {"heads", c.heads},
      {"encoder_layers", c.encoder_layers},
      {"decoder_layers", c.decoder_layers},
      {"activation", c.activation},
      {"gelu_approximation", "tanh"},
      {"pre_ln", c.pre_ln},
      {"final_layer_norms", c.pre_ln},
      {"layer_norm_eps", model::LayerNorm::kEps},
      {"dropout", as_written(c.dropout)},
      {"attention_dropout", as_written(c.attention_dropout)},
      {"label_smoothing", c.label_smoothing},
      {"pad_id", c.pad_id},
      {"unk_id", c.unk_id},
      {"bos_id", c.bos_id},
      {"eos_id", c.eos_id},
      {"linear_weight_layout", "[in, out]: y = x W + b (PyTorch nn.Linear.weight is W transposed)"},
      {"embedding_scale", std::sqrt(static_cast<double>(c.d_model))},
      {"positions", "sinusoidal, interleaved: pe[p, 2i] = sin(p / 10000^(2i/d)), pe[p, 2i+1] = cos(p / 10000^(2i/d))"},
      {"output_projection", "tied: logits = h embedding^T, no bias"},
      {"attention_scale", "1/sqrt(d_model/heads)"},
  };
}

fs::path export_config_path(const fs::path& file) {
  fs::path p = file;
  return p.replace_extension(".json");
}

ExportReport export_safetensors(const fs::path& source, const fs::path& file, DType dtype) {
  TESSERA_CHECK(dtype == DType::f32 || dtype == DType::bf16, "--dtype: must be f32 or bf16, got ", dtype_name(dtype));
  TESSERA_CHECK(export_config_path(file) != file, "--out: '", file.string(),
                "' would be overwritten by its own configuration file; give it the extension .safetensors");
  CheckpointReader reader(source);
  const train::TrainOptions trained = trained_options(reader.manifest(), reader.dir());
  const model::ParameterStore store = declare_parameters(trained.model, 1);
  check_same_model(reader.manifest(), reader.dir(), store);

  ExportReport report{reader.dir(), file, export_config_path(file), reader.manifest().step, 0, 0, 0};
  const std::string config = export_config(trained, report.step).dump(2);
  // The whole model is in memory once, in the exported dtype (the writer holds the tensors).
  SafetensorsWriter writer;
  for (const model::ParamInfo& p : store.params()) {
    const Tensor t = reader.read(p.name, dtype);
    writer.add(p.name, t);
    report.tensors += 1;
    report.parameters += t.numel();
  }
  writer.set_metadata("tessera.config", config);
  writer.set_metadata("tessera.step", std::to_string(report.step));
  if (file.has_parent_path()) fs::create_directories(file.parent_path());
  report.bytes = static_cast<int64_t>(writer.write(file).bytes);
  write_file_atomically(report.config_file, config + "\n");
  return report;
}

}  // namespace tessera::checkpoint
