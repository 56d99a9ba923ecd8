#include "parallel/tensor_parallel_linear.h"

#include "kernels/ops.h"

namespace tessera::parallel {

using model::Init;
using model::Partition;

void all_reduce_sum(Communicator& comm, Tensor& t) {
  if (comm.size() > 1) comm.all_reduce(t.raw(), t.numel(), t.dtype(), ReduceOp::sum);
}

ColumnParallelLinear::ColumnParallelLinear(model::ParameterStore& store, const std::string& name, int64_t in,
                                           int64_t out, Communicator& tp)
    : store_(store),
      weight_(store.add(name + ".weight", {in, out}, Partition::split(1, tp.size(), tp.rank()), Init::xavier_uniform)),
      bias_(store.add(name + ".bias", {out}, Partition::split(0, tp.size(), tp.rank()), Init::zeros)),
      local_out_(out / tp.size()) {}

namespace {
// An int8 layer serves decoding only: its f32 weight is no longer what forward multiplies by.
void check_not_quantized(bool quantized, const model::ParameterStore& store, int weight) {
  TESSERA_CHECK(!quantized, "backward through '", store.info(weight).name,
                "': the layer is quantised to int8 for decoding (quantize_int8), which has no gradient");
}
}  // namespace

void ColumnParallelLinear::forward(const Tensor& x, Tensor& y, bool add_bias) {
  if (int8_) {
    kernels::int8_matmul(x, *int8_, add_bias ? store_.value(bias_) : Tensor(), y);
    return;
  }
  if (store_.trainable()) x_ = x;
  kernels::matmul(x, false, store_.value(weight_), false, y, 1.0, 0.0, store_.precision());
  if (add_bias) kernels::add_bias(y, store_.value(bias_));
}

void ColumnParallelLinear::backward(const Tensor& dy, Tensor& dx, bool accumulate_dx) {
  check_not_quantized(quantized(), store_, weight_);
  Tensor dw = store_.grad(weight_), db = store_.grad(bias_);
  kernels::matmul(x_, true, dy, false, dw, 1.0, 1.0, store_.precision());
  kernels::bias_backward(dy, db);
  kernels::matmul(dy, false, store_.value(weight_), true, dx, 1.0, accumulate_dx ? 1.0 : 0.0, store_.precision());
  x_ = Tensor();
}

const kernels::Int8Weight& ColumnParallelLinear::quantize_int8() {
  if (!int8_) int8_.emplace(store_.value(weight_), kernels::Int8Weight::Layout::in_out, store_.info(weight_).name);
  return *int8_;
}

RowParallelLinear::RowParallelLinear(model::ParameterStore& store, const std::string& name, int64_t in, int64_t out,
                                     Communicator& tp)
    : store_(store),
      tp_(tp),
      weight_(store.add(name + ".weight", {in, out}, Partition::split(0, tp.size(), tp.rank()), Init::xavier_uniform)),
      bias_(store.add(name + ".bias", {out}, Partition::replicated(), Init::zeros)) {}

void RowParallelLinear::forward(const Tensor& x, Tensor& y) {
  if (int8_) {
    kernels::int8_matmul(x, *int8_, Tensor(), y);
  } else {
    if (store_.trainable()) x_ = x;
    kernels::matmul(x, false, store_.value(weight_), false, y, 1.0, 0.0, store_.precision());
  }
  all_reduce_sum(tp_, y);
  kernels::add_bias(y, store_.value(bias_));
}

void RowParallelLinear::backward(const Tensor& dy, Tensor& dx) {
  check_not_quantized(quantized(), store_, weight_);
  Tensor dw = store_.grad(weight_), db = store_.grad(bias_);
  kernels::matmul(x_, true, dy, false, dw, 1.0, 1.0, store_.precision());
  kernels::bias_backward(dy, db);
  kernels::matmul(dy, false, store_.value(weight_), true, dx, 1.0, 0.0, store_.precision());
  x_ = Tensor();
}

const kernels::Int8Weight& RowParallelLinear::quantize_int8() {
  if (!int8_) int8_.emplace(store_.value(weight_), kernels::Int8Weight::Layout::in_out, store_.info(weight_).name);
  return *int8_;
}

}  // namespace tessera::parallel
