// The CUDA backend's implementations (f32, device memory), called by the dispatch in kernels/.
// Compiled only when the build found nvcc (TESSERA_WITH_CUDA).
#pragma once

#include "kernels/ops.h"

namespace tessera::kernels::cuda {

// True when a CUDA device is present and usable; also registers the device allocator.
bool device_available();

void matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c, double alpha,
            double beta);
void batched_matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c,
                    double alpha, double beta);
void bias_activation_forward(Activation act, Tensor& pre, const Tensor& bias, Tensor& y);
void activation_backward(Activation act, const Tensor& pre, const Tensor& dy, Tensor& dpre);

}  // namespace tessera::kernels::cuda
