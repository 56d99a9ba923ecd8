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

void ColumnParallelLinear::forward(const Tensor& x, Tensor& y, bool add_bias) {
  x_ = x;
  kernels::matmul(x, false, store_.value(weight_), false, y, 1.0, 0.0, store_.precision());
  if (add_bias) kernels::add_bias(y, store_.value(bias_));
}

void ColumnParallelLinear::backward(const Tensor& dy, Tensor& dx, bool accumulate_dx) {
  Tensor dw = store_.grad(weight_), db = store_.grad(bias_);
  kernels::matmul(x_, true, dy, false, dw, 1.0, 1.0, store_.precision());
  kernels::bias_backward(dy, db);
  kernels::matmul(dy, false, store_.value(weight_), true, dx, 1.0, accumulate_dx ? 1.0 : 0.0, store_.precision());
  x_ = Tensor();
}

RowParallelLinear::RowParallelLinear(model::ParameterStore& store, const std::string& name, int64_t in, int64_t out,
                                     Communicator& tp)
    : store_(store),
      tp_(tp),
      weight_(store.add(name + ".weight", {in, out}, Partition::split(0, tp.size(), tp.rank()), Init::xavier_uniform)),
      bias_(store.add(name + ".bias", {out}, Partition::replicated(), Init::zeros)) {}

void RowParallelLinear::forward(const Tensor& x, Tensor& y) {
  x_ = x;
  kernels::matmul(x, false, store_.value(weight_), false, y, 1.0, 0.0, store_.precision());
  all_reduce_sum(tp_, y);
  kernels::add_bias(y, store_.value(bias_));
}

void RowParallelLinear::backward(const Tensor& dy, Tensor& dx) {
  Tensor dw = store_.grad(weight_), db = store_.grad(bias_);
  kernels::matmul(x_, true, dy, false, dw, 1.0, 1.0, store_.precision());
  kernels::bias_backward(dy, db);
  kernels::matmul(dy, false, store_.value(weight_), true, dx, 1.0, 0.0, store_.precision());
  x_ = Tensor();
}

}  // namespace tessera::parallel
