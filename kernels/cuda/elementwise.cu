// Elementwise ops as grid-stride loops (one element per thread per lap), the bias gradient as a
// deterministic column sum (column_sums.cuh: fixed row chunks, no atomics), and the attention
// head reshapes [B, S, H*dk] <-> [B, H, S, dk] as copy kernels indexed by the output element.
#include "kernels/cuda/column_sums.cuh"
#include "kernels/cuda/launch.cuh"

namespace tessera::kernels::cuda {
namespace {

template <typename T>
__global__ void add_kernel(const T* a, const T* b, T* out, int64_t n) {
  for (int64_t i = grid_first(); i < n; i += grid_stride()) out[i] = a[i] + b[i];
}

template <typename T>
__global__ void axpy_kernel(T alpha, const T* x, T* y, int64_t n) {
  for (int64_t i = grid_first(); i < n; i += grid_stride()) y[i] += alpha * x[i];
}

template <typename T>
__global__ void scale_kernel(T* x, T alpha, int64_t n) {
  for (int64_t i = grid_first(); i < n; i += grid_stride()) x[i] *= alpha;
}

template <typename T>
__global__ void add_bias_kernel(T* x, const T* bias, int64_t n, int64_t cols) {
  for (int64_t i = grid_first(); i < n; i += grid_stride()) x[i] += bias[i % cols];
}

// The bias gradient's one term: dy itself.
template <typename T>
struct BiasTerm {
  const T* dy;
  int64_t cols;
  __device__ __forceinline__ void operator()(int64_t r, int64_t c, T* v) const { v[0] = dy[r * cols + c]; }
};

// y[b, h, s, :] = x[b, s, h, :] (split) or the reverse (merge): element i of the [B, H, S, dk]
// tensor and its place in the [B, S, H, dk] one.
template <typename T, bool kSplit>
__global__ void heads_kernel(const T* in, T* out, int64_t seq, int64_t heads, int64_t dk, int64_t n) {
  for (int64_t i = grid_first(); i < n; i += grid_stride()) {
    const int64_t d = i % dk, s = (i / dk) % seq, h = (i / (dk * seq)) % heads, b = i / (dk * seq * heads);
    const int64_t j = ((b * seq + s) * heads + h) * dk + d;  // the same element in [B, S, H, dk]
    if (kSplit) out[i] = in[j];
    else out[j] = in[i];
  }
}

}  // namespace

void add(const Tensor& a, const Tensor& b, Tensor& out) {
  const int64_t n = a.numel();
  if (n == 0) return;
  TESSERA_DISPATCH_FLOAT(a.dtype(), "add", {
    add_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(a.data<scalar_t>(), b.data<scalar_t>(),
                                                         out.data<scalar_t>(), n);
    check_launch("add");
  });
}

void axpy(double alpha, const Tensor& x, Tensor& y) {
  const int64_t n = x.numel();
  if (n == 0) return;
  TESSERA_DISPATCH_FLOAT(x.dtype(), "axpy", {
    axpy_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(static_cast<scalar_t>(alpha), x.data<scalar_t>(),
                                                          y.data<scalar_t>(), n);
    check_launch("axpy");
  });
}

void scale(Tensor& x, double alpha) {
  const int64_t n = x.numel();
  if (n == 0) return;
  TESSERA_DISPATCH_FLOAT(x.dtype(), "scale", {
    scale_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(x.data<scalar_t>(), static_cast<scalar_t>(alpha), n);
    check_launch("scale");
  });
}

void add_bias(Tensor& x, const Tensor& bias) {
  const int64_t n = x.numel(), cols = bias.numel();
  if (n == 0) return;
  TESSERA_DISPATCH_FLOAT(x.dtype(), "add_bias", {
    add_bias_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(x.data<scalar_t>(), bias.data<scalar_t>(), n, cols);
    check_launch("add_bias");
  });
}

void bias_backward(const Tensor& dy, Tensor& dbias) {
  const int64_t cols = dbias.numel();
  if (dy.numel() == 0) return;
  const int64_t rows = dy.numel() / cols;
  TESSERA_DISPATCH_FLOAT(dy.dtype(), "bias_backward", {
    add_column_sums(BiasTerm<scalar_t>{dy.data<scalar_t>(), cols}, rows, cols,
                    ColumnOutputs<scalar_t, 1>{{dbias.data<scalar_t>()}}, "bias_backward");
  });
}

void split_heads(const Tensor& x, int64_t heads, Tensor& y) {
  const int64_t n = x.numel();
  if (n == 0) return;
  const int64_t seq = x.dim(1), dk = x.dim(2) / heads;
  TESSERA_DISPATCH_FLOAT(x.dtype(), "split_heads", {
    heads_kernel<scalar_t, true><<<blocks_for(n), kThreads, 0, stream()>>>(x.data<scalar_t>(), y.data<scalar_t>(),
                                                                         seq, heads, dk, n);
    check_launch("split_heads");
  });
}

void merge_heads(const Tensor& y, Tensor& x) {
  const int64_t n = y.numel();
  if (n == 0) return;
  const int64_t heads = y.dim(1), seq = y.dim(2), dk = y.dim(3);
  TESSERA_DISPATCH_FLOAT(y.dtype(), "merge_heads", {
    heads_kernel<scalar_t, false><<<blocks_for(n), kThreads, 0, stream()>>>(y.data<scalar_t>(), x.data<scalar_t>(),
                                                                          seq, heads, dk, n);
    check_launch("merge_heads");
  });
}

}  // namespace tessera::kernels::cuda
