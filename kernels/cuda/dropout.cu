// Dropout with a counter-based mask, identical bit for bit to the CPU's: element (row, col) is
// kept iff the uniform draw of word col % 4 of the Philox block (dropout_row_counter(row), block
// col / 4) is at least p (math.h). A thread draws one Philox block and serves its four columns;
// backward recomputes the mask, since y = mask * x / (1 - p) is its own transpose.
#include "kernels/cuda/launch.cuh"

namespace tessera::kernels::cuda {
namespace {

// a * b rounded on its own, never fused into an add: the CPU's residual + x * mask, exactly.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }

// y = residual + x * mask / (1 - p) (residual may be null); y may be x.
template <typename T>
__global__ void dropout_kernel(DropoutSite site, const T* x, const T* residual, T* y, int64_t rows, int64_t cols) {
  const int64_t groups = (cols + 3) / 4;  // Philox blocks per row
  const T keep_scale = dropout_keep_scale<T>(site.p);
  const PhiloxKey key = philox_key(site.seed, site.step);
  for (int64_t g = grid_first(); g < rows * groups; g += grid_stride()) {
    const int64_t row = g / groups, block = g % groups;
    PhiloxCounter ctr = dropout_row_counter(site, row);
    ctr.c0 = static_cast<uint32_t>(block);
    const PhiloxBlock words = philox4x32(ctr, key);
    for (int k = 0; k < 4; ++k) {
      const int64_t col = 4 * block + k;
      if (col >= cols) break;
      const int64_t i = row * cols + col;
      const T mask = dropout_keep_word(words.x[k], site.p) ? keep_scale : T(0);
      y[i] = residual != nullptr ? residual[i] + mul_rn(x[i], mask) : mul_rn(x[i], mask);
    }
  }
}

template <typename T>
void launch_dropout(const DropoutSite& site, const T* x, const T* residual, T* y, int64_t rows, int64_t cols,
                    const char* op) {
  dropout_kernel<<<blocks_for(rows * ((cols + 3) / 4)), kThreads, 0, stream()>>>(site, x, residual, y, rows, cols);
  check_launch(op);
}

}  // namespace

void dropout_forward(const DropoutSite& site, const Tensor& x, const Tensor& residual, Tensor& y) {
  if (x.numel() == 0) return;
  const int64_t cols = x.dim(-1), rows = x.numel() / cols;
  TESSERA_DISPATCH_FLOAT(x.dtype(), "dropout_forward",
                         launch_dropout(site, x.data<scalar_t>(),
                                        residual.defined() ? residual.data<scalar_t>() : nullptr, y.data<scalar_t>(),
                                        rows, cols, "dropout_forward"));
}

void dropout_backward(const DropoutSite& site, const Tensor& dy, Tensor& dx) {
  if (dy.numel() == 0) return;
  const int64_t cols = dy.dim(-1), rows = dy.numel() / cols;
  TESSERA_DISPATCH_FLOAT(dy.dtype(), "dropout_backward",
                         launch_dropout<scalar_t>(site, dy.data<scalar_t>(), nullptr, dx.data<scalar_t>(), rows, cols,
                                                  "dropout_backward"));
}

}  // namespace tessera::kernels::cuda
