// Parameters in one flat buffer, gradients in another of the same layout. Every parameter is a
// named view with its global shape, this rank's local shape and its partition (replicated, or
// split along one dimension into tp parts). The optimizer, gradient buckets, clipping and
// checkpoints all read this one table.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/ops.h"

namespace tessera::model {

// Replicated (dim = -1), or split along `dim` into `parts` equal slices of which this rank holds
// slice `index`.
struct Partition {
  int dim = -1;
  int parts = 1;
  int index = 0;
  static Partition replicated() { return {}; }
  static Partition split(int dim, int parts, int index) { return {dim, parts, index}; }
  bool is_replicated() const { return dim < 0 || parts == 1; }
};

enum class Init {
  zeros,
  ones,
  xavier_uniform,  // U(-a, a), a = sqrt(6 / (fan_in + fan_out)), fans from the *global* shape
  embedding_normal,  // N(0, 1/d): the embedding is scaled by sqrt(d) on lookup
};

struct ParamInfo {
  std::string name;
  Shape global_shape;
  Shape local_shape;
  Partition partition;
  Init init = Init::zeros;
  int64_t offset = 0;  // in elements, into the flat buffers
  int64_t numel() const { return shape_numel(local_shape); }
  // Global rows [0, valid_rows) along dim 0 are real; rows past it (vocabulary padding) stay zero.
  int64_t valid_rows = -1;
};

class ParameterStore {
 public:
  // Declares a parameter; returns its id. Must precede finalize().
  int add(const std::string& name, const Shape& global_shape, Partition partition, Init init,
          int64_t valid_rows = -1);
  // Allocates the flat buffers in declaration order and initialises every parameter from a
  // counter-based stream keyed by (seed, parameter name, global element index): each rank draws
  // exactly the values of its slice, so any layout starts from the same global weights.
  // Allocates the flat value and gradient buffers on `device` and fills the values (drawn on the host).
  void finalize(DType dtype, uint64_t seed, Device device = Device::cpu);
  // For inference: allocates the value buffer only, zero-filled for a checkpoint to overwrite; no
  // gradients (grad() then throws) and no initial draw, so a decoder holds its weights once.
  void finalize_for_inference(DType dtype, Device device = Device::cpu);

  bool finalized() const { return values_.defined(); }
  // Whether backward can run (finalize, not finalize_for_inference): only then do layers keep the
  // activations their backward reads, so a decoder holds none between its forward passes.
  bool trainable() const { return grads_.defined(); }
  size_t size() const { return params_.size(); }
  const ParamInfo& info(int id) const { return params_.at(id); }
  const std::vector<ParamInfo>& params() const { return params_; }
  int find(const std::string& name) const;  // -1 when absent
  Tensor value(int id) const;
  Tensor grad(int id) const;
  const Tensor& values() const { return values_; }
  const Tensor& grads() const { return grads_; }
  DType dtype() const { return values_.dtype(); }
  Device device() const { return values_.device(); }
  void zero_grads() { grads_.zero_(); }

  // The precision of every matrix product that reads these parameters (and of the attention
  // products between them): fp32, or bf16 mixed precision. The values, gradients and optimizer
  // state stay in the store's dtype (the f32 master copy) either way.
  kernels::Precision precision() const { return precision_; }
  void set_precision(kernels::Precision p) { precision_ = p; }

  // Backward calls this once the gradients of parameters [first, last] are complete for the
  // step; data parallelism hooks in here to start bucket all-reduces.
  void grads_ready(int first, int last) const {
    if (on_grads_ready_) on_grads_ready_(first, last);
  }
  void set_grads_ready_hook(std::function<void(int, int)> hook) { on_grads_ready_ = std::move(hook); }

 private:
  std::vector<ParamInfo> params_;
  int64_t total_ = 0;
  Tensor values_, grads_;
  std::function<void(int, int)> on_grads_ready_;
  kernels::Precision precision_ = kernels::Precision::fp32;
};

// The local shape of a global shape under a partition; throws naming the parameter when the split
// is not even.
Shape local_shape_of(const std::string& name, const Shape& global_shape, const Partition& p);

}  // namespace tessera::model
