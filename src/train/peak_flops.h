// The matrix-product peak of this rank, measured: the denominator of a run's "% of peak" (MFU).
// A datasheet number would flatter a shared or throttled machine; a 1024^3 product timed at the
// run's precision on the run's device, on the threads the run uses, is what the step could reach.
#pragma once

#include "core/tensor.h"
#include "kernels/ops.h"

namespace tessera::train {

// FLOP/s of the best of a few 1024 x 1024 x 1024 products (about 0.1-0.5 s on a CPU core).
double measure_matmul_peak(Device device, kernels::Precision precision);

}  // namespace tessera::train
