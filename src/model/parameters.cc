#include "model/parameters.h"

#include <cmath>
#include <functional>

#include "core/error.h"
#include "core/philox.h"

namespace tessera::model {

Shape local_shape_of(const std::string& name, const Shape& global_shape, const Partition& p) {
  Shape local = global_shape;
  if (p.is_replicated()) return local;
  TESSERA_CHECK(p.dim < static_cast<int>(global_shape.size()), "parameter ", name, ": split dimension ", p.dim,
                " out of range for shape ", shape_string(global_shape));
  TESSERA_CHECK(global_shape[p.dim] % p.parts == 0, "parameter ", name, ": dimension ", p.dim, " of size ",
                global_shape[p.dim], " does not split into ", p.parts, " equal parts");
  local[p.dim] /= p.parts;
  return local;
}

int ParameterStore::add(const std::string& name, const Shape& global_shape, Partition partition, Init init,
                        int64_t valid_rows) {
  TESSERA_CHECK(!finalized(), "parameter ", name, " declared after the parameter buffer was allocated");
  TESSERA_CHECK(find(name) < 0, "parameter ", name, " declared twice");
  ParamInfo p;
  p.name = name;
  p.global_shape = global_shape;
  p.local_shape = local_shape_of(name, global_shape, partition);
  p.partition = partition;
  p.init = init;
  p.offset = total_;
  p.valid_rows = valid_rows;
  total_ += p.numel();
  params_.push_back(std::move(p));
  return static_cast<int>(params_.size()) - 1;
}

int ParameterStore::find(const std::string& name) const {
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].name == name) return static_cast<int>(i);
  return -1;
}

Tensor ParameterStore::value(int id) const { return values_.view(params_.at(id).offset, params_.at(id).local_shape); }
Tensor ParameterStore::grad(int id) const {
  TESSERA_CHECK(grads_.defined(), "gradient of parameter ", params_.at(id).name,
                " requested from a store finalized for inference (no gradient buffer)");
  return grads_.view(params_.at(id).offset, params_.at(id).local_shape);
}

namespace {

// FNV-1a: a stable 32-bit id of a parameter name, the same on every rank and in every layout.
uint32_t name_hash(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}

// The global flat index of local element i of a parameter, and its global row (dimension 0).
struct GlobalIndex {
  int64_t flat, row;
};
GlobalIndex global_index(const ParamInfo& p, int64_t i) {
  const size_t nd = p.local_shape.size();
  std::vector<int64_t> idx(nd);
  for (size_t d = nd; d-- > 0;) {
    idx[d] = i % p.local_shape[d];
    i /= p.local_shape[d];
  }
  if (!p.partition.is_replicated()) idx[p.partition.dim] += p.partition.index * p.local_shape[p.partition.dim];
  int64_t flat = 0;
  for (size_t d = 0; d < nd; ++d) flat = flat * p.global_shape[d] + idx[d];
  return {flat, nd ? idx[0] : 0};
}

double init_value(const ParamInfo& p, uint64_t seed, int64_t global_flat) {
  switch (p.init) {
    case Init::zeros: return 0;
    case Init::ones: return 1;
    case Init::xavier_uniform:
    case Init::embedding_normal: break;
  }
  const PhiloxBlock b = philox4x32(
      PhiloxCounter{static_cast<uint32_t>(global_flat), static_cast<uint32_t>(global_flat >> 32), name_hash(p.name),
                    static_cast<uint32_t>(RngPurpose::init)},
      philox_key(seed, 0));
  const double u1 = (b.x[0] + 0.5) / 4294967296.0, u2 = (b.x[1] + 0.5) / 4294967296.0;
  if (p.init == Init::xavier_uniform) {
    const double fan_in = static_cast<double>(p.global_shape[0]);
    const double fan_out = static_cast<double>(p.global_shape.size() > 1 ? p.global_shape[1] : 1);
    const double a = std::sqrt(6.0 / (fan_in + fan_out));
    return (2 * u1 - 1) * a;
  }
  // Box-Muller: a standard normal from two uniforms, scaled to N(0, 1/d).
  const double z = std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
  return z / std::sqrt(static_cast<double>(p.global_shape.back()));
}

}  // namespace

void ParameterStore::finalize(DType dtype, uint64_t seed, Device device) {
  TESSERA_CHECK(!finalized(), "parameter buffer allocated twice");
  TESSERA_CHECK(dtype == DType::f32 || dtype == DType::f64, "parameters must be f32 or f64, got ", dtype_name(dtype));
  values_ = Tensor::zeros({total_}, DType::f64);
  double* v = values_.data<double>();
  for (const ParamInfo& p : params_)
    for (int64_t i = 0; i < p.numel(); ++i) {
      const GlobalIndex g = global_index(p, i);
      const bool padding_row = p.valid_rows >= 0 && g.row >= p.valid_rows;
      v[p.offset + i] = padding_row ? 0.0 : init_value(p, seed, g.flat);
    }
  if (dtype != DType::f64) values_ = values_.to(dtype);
  if (!device.is_cpu()) values_ = values_.to(device);
  grads_ = Tensor::zeros({total_}, dtype, device);
}

void ParameterStore::finalize_for_inference(DType dtype, Device device) {
  TESSERA_CHECK(!finalized(), "parameter buffer allocated twice");
  TESSERA_CHECK(dtype == DType::f32 || dtype == DType::f64, "parameters must be f32 or f64, got ", dtype_name(dtype));
  values_ = Tensor::zeros({total_}, dtype, device);
}

}  // namespace tessera::model
