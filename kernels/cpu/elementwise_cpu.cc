// Elementwise ops and row reductions. One pass over memory each.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu_ops.h"

namespace tessera::kernels::cpu {

template <typename T>
void add(const T* a, const T* b, T* out, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

template <typename T>
void axpy(T alpha, const T* x, T* y, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

template <typename T>
void scale(T* x, T alpha, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] *= alpha;
}

template <typename T>
void add_bias(T* x, const T* bias, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    T* row = x + r * cols;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) row[c] += bias[c];
  }
}

// Column sums, parallel over blocks of columns so each output has one writer and a fixed order.
template <typename T>
void bias_backward(const T* dy, T* dbias, int64_t rows, int64_t cols) {
  constexpr int64_t kBlock = 64;
#pragma omp parallel for schedule(static)
  for (int64_t c0 = 0; c0 < cols; c0 += kBlock) {
    const int64_t c1 = std::min(cols, c0 + kBlock);
    T acc[kBlock] = {};
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = dy + r * cols;
#pragma omp simd
      for (int64_t c = c0; c < c1; ++c) acc[c - c0] += row[c];
    }
    for (int64_t c = c0; c < c1; ++c) dbias[c] += acc[c - c0];
  }
}

template <typename T>
void bias_activation_forward(Activation act, T* pre, const T* bias, T* y, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    T* p = pre + r * cols;
    T* out = y + r * cols;
    if (act == Activation::relu) {
#pragma omp simd
      for (int64_t c = 0; c < cols; ++c) {
        p[c] += bias[c];
        out[c] = relu(p[c]);
      }
    } else {
#pragma omp simd
      for (int64_t c = 0; c < cols; ++c) {
        p[c] += bias[c];
        out[c] = gelu(p[c]);
      }
    }
  }
}

template <typename T>
void activation_backward(Activation act, const T* pre, const T* dy, T* dpre, int64_t n) {
  if (act == Activation::relu) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) dpre[i] = dy[i] * relu_grad(pre[i]);
  } else {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) dpre[i] = dy[i] * gelu_grad(pre[i]);
  }
}

// [B, S, H, dk] <-> [B, H, S, dk]: copies of dk-long runs.
template <typename T>
void split_heads(const T* x, T* y, int64_t batch, int64_t seq, int64_t heads, int64_t dk) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t s = 0; s < seq; ++s) {
        const T* src = x + ((b * seq + s) * heads + h) * dk;
        T* dst = y + ((b * heads + h) * seq + s) * dk;
        for (int64_t i = 0; i < dk; ++i) dst[i] = src[i];
      }
}

template <typename T>
void merge_heads(const T* y, T* x, int64_t batch, int64_t seq, int64_t heads, int64_t dk) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t s = 0; s < seq; ++s)
      for (int64_t h = 0; h < heads; ++h) {
        const T* src = y + ((b * heads + h) * seq + s) * dk;
        T* dst = x + ((b * seq + s) * heads + h) * dk;
        for (int64_t i = 0; i < dk; ++i) dst[i] = src[i];
      }
}

#define INSTANTIATE(T)                                                                        \
  template void add<T>(const T*, const T*, T*, int64_t);                                      \
  template void axpy<T>(T, const T*, T*, int64_t);                                            \
  template void scale<T>(T*, T, int64_t);                                                     \
  template void add_bias<T>(T*, const T*, int64_t, int64_t);                                  \
  template void bias_backward<T>(const T*, T*, int64_t, int64_t);                             \
  template void bias_activation_forward<T>(Activation, T*, const T*, T*, int64_t, int64_t);   \
  template void activation_backward<T>(Activation, const T*, const T*, T*, int64_t);          \
  template void split_heads<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t);            \
  template void merge_heads<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t);
TESSERA_CPU_INSTANTIATE(INSTANTIATE)

}  // namespace tessera::kernels::cpu
