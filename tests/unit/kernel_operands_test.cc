// Every op's dispatcher checks every operand (device, dtype and shape) before it reads any data,
// and its error names the op and the operand at fault. Each test hands one op wrong operands: a
// later one on another device, of another dtype or of a wrong shape, or a first one of a dtype
// no op computes in or of too few dimensions.
//
// A tensor's device is the tag of the allocator its storage came from, so without a GPU the
// fixture registers host memory as the CUDA allocator: those tensors claim Device::cuda, and a
// dispatcher that failed to check them would read them on the CPU path without crashing (the
// missing error is what fails the test). Where the CUDA backend is built and a GPU is present,
// real device memory is used instead.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include "core/allocator.h"
#include "kernels/ops.h"
#include "test_util.h"

#if defined(TESSERA_WITH_CUDA)
#include "kernels/cuda/cuda_ops.h"
#endif

namespace tessera {
namespace {
using namespace tessera::testing;
namespace k = tessera::kernels;

class HostMemoryAsCuda final : public Allocator {
 public:
  void* allocate(size_t bytes) override { return std::malloc(bytes); }
  void deallocate(void* ptr) override { std::free(ptr); }
  void zero(void* ptr, size_t bytes) override { std::memset(ptr, 0, bytes); }
  void copy(void* dst, Device, const void* src, Device, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void copy_rows(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t row_bytes,
                 size_t rows) override {
    for (size_t i = 0; i < rows; ++i)
      std::memcpy(static_cast<char*>(dst) + i * dst_pitch, static_cast<const char*>(src) + i * src_pitch, row_bytes);
  }
};

class KernelOperands : public ::testing::Test {
 protected:
  void SetUp() override {
#if defined(TESSERA_WITH_CUDA)
    if (k::cuda::device_available()) return;  // the real CUDA allocator is registered
#endif
    static HostMemoryAsCuda host_as_cuda;
    register_cuda_allocator(&host_as_cuda, Device::cuda(0));
    registered_ = true;
  }
  void TearDown() override {
    if (registered_) register_cuda_allocator(nullptr, Device::cpu);  // as before: no CUDA backend
  }

 private:
  bool registered_ = false;
};

Tensor f32(const Shape& shape) { return random_tensor(shape, DType::f32); }
Tensor f64(const Shape& shape) { return random_tensor(shape, DType::f64); }
Tensor on_cuda(const Shape& shape, DType dtype = DType::f32) { return Tensor::zeros(shape, dtype, Device::cuda(0)); }

// Success when `call` throws tessera::Error whose message contains `expected`.
::testing::AssertionResult rejects(const std::function<void()>& call, const std::string& expected) {
  try {
    call();
  } catch (const Error& e) {
    if (std::string(e.what()).find(expected) != std::string::npos) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "the error \"" << e.what() << "\" does not say \"" << expected << "\"";
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw " << e.what() << " instead of tessera::Error";
  }
  return ::testing::AssertionFailure() << "no error; expected \"" << expected << "\"";
}

// ---- matrix products -------------------------------------------------------------------------
TEST_F(KernelOperands, Matmul) {
  Tensor a = f32({2, 3}), b = f32({3, 4}), c = f32({2, 4}), b64 = f64({3, 4}), c_dev = on_cuda({2, 4});
  EXPECT_TRUE(rejects([&] { k::matmul(a, false, b, false, c_dev); },
                      "matmul: tensor 'c' is on cuda:0 but 'a' is on cpu"));
  EXPECT_TRUE(rejects([&] { k::matmul(a, false, b64, false, c); }, "matmul: tensor 'b' is f64 but 'a' is f32"));
}

TEST_F(KernelOperands, BatchedMatmul) {
  Tensor a = f32({2, 2, 3}), b = f32({2, 3, 4}), c = f32({2, 2, 4}), b_dev = on_cuda({2, 3, 4}), c64 = f64({2, 2, 4});
  EXPECT_TRUE(rejects([&] { k::batched_matmul(a, false, b_dev, false, c); },
                      "batched_matmul: tensor 'b' is on cuda:0 but 'a' is on cpu"));
  EXPECT_TRUE(rejects([&] { k::batched_matmul(a, false, b, false, c64); },
                      "batched_matmul: tensor 'c' is f64 but 'a' is f32"));
}

// ---- elementwise -----------------------------------------------------------------------------
TEST_F(KernelOperands, Add) {
  Tensor a = f32({3, 4}), b = f32({3, 4}), out = f32({3, 4}), b64 = f64({3, 4}), out_dev = on_cuda({3, 4});
  EXPECT_TRUE(rejects([&] { k::add(a, b64, out); }, "add: tensor 'b' is f64 but 'a' is f32"));
  EXPECT_TRUE(rejects([&] { k::add(a, b, out_dev); }, "add: tensor 'out' is on cuda:0 but 'a' is on cpu"));
}

TEST_F(KernelOperands, Axpy) {
  Tensor x = f32({5}), y64 = f64({5}), y_dev = on_cuda({5});
  EXPECT_TRUE(rejects([&] { k::axpy(0.5, x, y64); }, "axpy: tensor 'y' is f64 but 'x' is f32"));
  EXPECT_TRUE(rejects([&] { k::axpy(0.5, x, y_dev); }, "axpy: tensor 'y' is on cuda:0 but 'x' is on cpu"));
}

TEST_F(KernelOperands, Scale) {
  Tensor x = Tensor::zeros({4}, DType::i32);
  EXPECT_TRUE(rejects([&] { k::scale(x, 2.0); }, "scale: tensor 'x' is i32, expected f32 or f64"));
}

TEST_F(KernelOperands, AddBias) {
  Tensor x = f32({3, 4}), scalar = f32({});
  EXPECT_TRUE(rejects([&] { k::add_bias(x, on_cuda({4})); }, "add_bias: tensor 'bias' is on cuda:0 but 'x' is on cpu"));
  EXPECT_TRUE(rejects([&] { k::add_bias(x, f64({4})); }, "add_bias: tensor 'bias' is f64 but 'x' is f32"));
  EXPECT_TRUE(rejects([&] { k::add_bias(scalar, f32({1})); }, "add_bias: tensor 'x' must be at least 1-D"));
}

TEST_F(KernelOperands, BiasBackward) {
  Tensor dy = f32({3, 4}), dbias64 = f64({4}), dbias_dev = on_cuda({4});
  EXPECT_TRUE(rejects([&] { k::bias_backward(dy, dbias64); },
                      "bias_backward: tensor 'dbias' is f64 but 'dy' is f32"));
  EXPECT_TRUE(rejects([&] { k::bias_backward(dy, dbias_dev); },
                      "bias_backward: tensor 'dbias' is on cuda:0 but 'dy' is on cpu"));
}

TEST_F(KernelOperands, SumSquares) {
  EXPECT_TRUE(rejects([&] { k::sum_squares(Tensor::zeros({4}, DType::bf16)); },
                      "sum_squares: tensor 'x' is bf16, expected f32 or f64"));
}

TEST_F(KernelOperands, BiasActivationForward) {
  const auto gelu = k::Activation::gelu;
  Tensor pre = f32({3, 4}), bias = f32({4}), y = f32({3, 4}), y_dev = on_cuda({3, 4});
  // The case: a device bias with a host pre went down the CPU path.
  EXPECT_TRUE(rejects([&] { k::bias_activation_forward(gelu, pre, on_cuda({4}), y); },
                      "bias_activation_forward: tensor 'bias' is on cuda:0 but 'pre' is on cpu"));
  EXPECT_TRUE(rejects([&] { k::bias_activation_forward(gelu, pre, f64({4}), y); },
                      "bias_activation_forward: tensor 'bias' is f64 but 'pre' is f32"));
  EXPECT_TRUE(rejects([&] { k::bias_activation_forward(gelu, pre, bias, y_dev); },
                      "bias_activation_forward: tensor 'y' is on cuda:0 but 'pre' is on cpu"));
}

TEST_F(KernelOperands, ActivationBackward) {
  const auto relu = k::Activation::relu;
  Tensor pre = f32({3, 4}), dy = f32({3, 4}), dpre = f32({3, 4}), dpre_dev = on_cuda({3, 4});
  EXPECT_TRUE(rejects([&] { k::activation_backward(relu, pre, dy, dpre_dev); },
                      "activation_backward: tensor 'dpre' is on cuda:0 but 'pre' is on cpu"));
  EXPECT_TRUE(rejects([&] { k::activation_backward(relu, pre, f64({3, 4}), dpre); },
                      "activation_backward: tensor 'dy' is f64 but 'pre' is f32"));
}

// ---- attention -------------------------------------------------------------------------------
TEST_F(KernelOperands, SplitHeads) {
  Tensor x = f32({2, 3, 4}), y64 = f64({2, 2, 3, 2}), y_dev = on_cuda({2, 2, 3, 2});
  EXPECT_TRUE(rejects([&] { k::split_heads(x, 2, y64); }, "split_heads: tensor 'y' is f64 but 'x' is f32"));
  EXPECT_TRUE(rejects([&] { k::split_heads(x, 2, y_dev); }, "split_heads: tensor 'y' is on cuda:0 but 'x' is on cpu"));
}

TEST_F(KernelOperands, MergeHeads) {
  Tensor y = f32({2, 2, 3, 2}), x64 = f64({2, 3, 4}), x_dev = on_cuda({2, 3, 4});
  EXPECT_TRUE(rejects([&] { k::merge_heads(y, x64); }, "merge_heads: tensor 'x' is f64 but 'y' is f32"));
  EXPECT_TRUE(rejects([&] { k::merge_heads(y, x_dev); }, "merge_heads: tensor 'x' is on cuda:0 but 'y' is on cpu"));
}

TEST_F(KernelOperands, MaskedSoftmaxForward) {
  Tensor scores = f32({2, 2, 3, 3}), probs = f32({2, 2, 3, 3}), probs64 = f64({2, 2, 3, 3});
  Tensor key_lengths = int_tensor({3, 2}), key_lengths_dev = on_cuda({2}, DType::i32);
  EXPECT_TRUE(rejects([&] { k::masked_softmax_forward(scores, key_lengths_dev, true, 0.5, probs); },
                      "masked_softmax_forward: tensor 'key_lengths' is on cuda:0 but 'scores' is on cpu"));
  EXPECT_TRUE(rejects([&] { k::masked_softmax_forward(scores, key_lengths, false, 0.5, probs64); },
                      "masked_softmax_forward: tensor 'probs' is f64 but 'scores' is f32"));
}

TEST_F(KernelOperands, MaskedSoftmaxBackward) {
  Tensor probs = f32({2, 3}), dscores = f32({2, 3}), dscores_dev = on_cuda({2, 3}), scalar = f32({});
  EXPECT_TRUE(rejects([&] { k::masked_softmax_backward(probs, f64({2, 3}), 0.5, dscores); },
                      "masked_softmax_backward: tensor 'dprobs' is f64 but 'probs' is f32"));
  EXPECT_TRUE(rejects([&] { k::masked_softmax_backward(probs, f32({2, 3}), 0.5, dscores_dev); },
                      "masked_softmax_backward: tensor 'dscores' is on cuda:0 but 'probs' is on cpu"));
  EXPECT_TRUE(rejects([&] { k::masked_softmax_backward(scalar, scalar, 0.5, scalar); },
                      "masked_softmax_backward: tensor 'probs' must be at least 1-D"));
}

// ---- layer norm ------------------------------------------------------------------------------
TEST_F(KernelOperands, LayerNormForward) {
  Tensor x = f32({3, 4}), gamma = f32({4}), beta = f32({4}), y = f32({3, 4}), mean = f32({3}), rstd = f32({3});
  Tensor rstd_dev = on_cuda({3});
  EXPECT_TRUE(rejects([&] { k::layer_norm_forward(x, gamma, f64({4}), 1e-5, y, mean, rstd); },
                      "layer_norm_forward: tensor 'beta' is f64 but 'x' is f32"));
  EXPECT_TRUE(rejects([&] { k::layer_norm_forward(x, gamma, beta, 1e-5, y, mean, rstd_dev); },
                      "layer_norm_forward: tensor 'rstd' is on cuda:0 but 'x' is on cpu"));
}

TEST_F(KernelOperands, LayerNormBackward) {
  Tensor x = f32({3, 4}), gamma = f32({4}), mean = f32({3}), rstd = f32({3}), dy = f32({3, 4});
  Tensor dx = f32({3, 4}), dgamma = f32({4}), dbeta = f32({4}), dbeta_dev = on_cuda({4});
  EXPECT_TRUE(rejects([&] { k::layer_norm_backward(x, f32({5}), mean, rstd, dy, dx, dgamma, dbeta); },
                      "layer_norm_backward: tensor 'gamma' has shape [5], expected [4]"));
  EXPECT_TRUE(rejects([&] { k::layer_norm_backward(x, gamma, mean, f32({4}), dy, dx, dgamma, dbeta); },
                      "layer_norm_backward: tensor 'rstd' has shape [4], expected [3]"));
  EXPECT_TRUE(rejects([&] { k::layer_norm_backward(x, gamma, f64({3}), rstd, dy, dx, dgamma, dbeta); },
                      "layer_norm_backward: tensor 'mean' is f64 but 'x' is f32"));
  EXPECT_TRUE(rejects([&] { k::layer_norm_backward(x, gamma, mean, rstd, dy, dx, dgamma, dbeta_dev); },
                      "layer_norm_backward: tensor 'dbeta' is on cuda:0 but 'x' is on cpu"));
}

// ---- dropout ---------------------------------------------------------------------------------
TEST_F(KernelOperands, DropoutForward) {
  k::DropoutSite site;
  site.p = 0.25f;
  Tensor x = f32({3, 4}), y = f32({3, 4}), y_dev = on_cuda({3, 4});
  EXPECT_NO_THROW(k::dropout_forward(site, x, Tensor(), y));  // residual is optional
  EXPECT_TRUE(rejects([&] { k::dropout_forward(site, x, f64({3, 4}), y); },
                      "dropout_forward: tensor 'residual' is f64 but 'x' is f32"));
  EXPECT_TRUE(rejects([&] { k::dropout_forward(site, x, on_cuda({3, 4}), y); },
                      "dropout_forward: tensor 'residual' is on cuda:0 but 'x' is on cpu"));
  EXPECT_TRUE(rejects([&] { k::dropout_forward(site, x, Tensor(), y_dev); },
                      "dropout_forward: tensor 'y' is on cuda:0 but 'x' is on cpu"));
}

TEST_F(KernelOperands, DropoutBackward) {
  k::DropoutSite site;
  site.p = 0.25f;
  Tensor dy = f32({3, 4}), dx64 = f64({3, 4}), dx_dev = on_cuda({3, 4});
  EXPECT_TRUE(rejects([&] { k::dropout_backward(site, dy, dx64); },
                      "dropout_backward: tensor 'dx' is f64 but 'dy' is f32"));
  EXPECT_TRUE(rejects([&] { k::dropout_backward(site, dy, dx_dev); },
                      "dropout_backward: tensor 'dx' is on cuda:0 but 'dy' is on cpu"));
}

// ---- embeddings ------------------------------------------------------------------------------
TEST_F(KernelOperands, EmbeddingForward) {
  Tensor ids = int_tensor({0, 2, 1}), ids_dev = on_cuda({3}, DType::i32), table = f32({4, 3});
  Tensor out = f32({3, 3}), out64 = f64({3, 3});
  EXPECT_TRUE(rejects([&] { k::embedding_forward(ids_dev, table, 0, 1.0, out); },
                      "embedding_forward: tensor 'ids' is on cuda:0 but 'table' is on cpu"));
  EXPECT_TRUE(rejects([&] { k::embedding_forward(ids, table, 0, 1.0, out64); },
                      "embedding_forward: tensor 'out' is f64 but 'table' is f32"));
}

TEST_F(KernelOperands, EmbeddingBackward) {
  Tensor ids = int_tensor({0, 2, 1}), ids_dev = on_cuda({3}, DType::i32), dtable = f32({4, 3});
  EXPECT_TRUE(rejects([&] { k::embedding_backward(ids, f64({3, 3}), 0, 1.0, dtable); },
                      "embedding_backward: tensor 'dout' is f64 but 'dtable' is f32"));
  EXPECT_TRUE(rejects([&] { k::embedding_backward(ids_dev, f32({3, 3}), 0, 1.0, dtable); },
                      "embedding_backward: tensor 'ids' is on cuda:0 but 'dtable' is on cpu"));
}

TEST_F(KernelOperands, AddPositions) {
  Tensor x = Tensor::zeros({4, 4}, DType::i32);
  EXPECT_TRUE(rejects([&] { k::add_positions(x, 2, 0); }, "add_positions: tensor 'x' is i32, expected f32 or f64"));
}

// ---- cross-entropy ---------------------------------------------------------------------------
TEST_F(KernelOperands, CrossEntropyRowMax) {
  Tensor logits = f32({3, 5}), row_max64 = f64({3}), row_max_dev = on_cuda({3});
  EXPECT_TRUE(rejects([&] { k::cross_entropy_row_max(logits, 5, row_max64); },
                      "cross_entropy_row_max: tensor 'row_max' is f64 but 'logits' is f32"));
  EXPECT_TRUE(rejects([&] { k::cross_entropy_row_max(logits, 5, row_max_dev); },
                      "cross_entropy_row_max: tensor 'row_max' is on cuda:0 but 'logits' is on cpu"));
}

TEST_F(KernelOperands, CrossEntropyRowSums) {
  Tensor logits = f32({3, 5}), targets = int_tensor({0, 4, 2}), targets_dev = on_cuda({3}, DType::i32);
  Tensor row_max = f32({3}), sums = f32({3, 3}), sums64 = f64({3, 3});
  EXPECT_TRUE(rejects([&] { k::cross_entropy_row_sums(logits, 5, targets_dev, 0, row_max, sums); },
                      "cross_entropy_row_sums: tensor 'targets' is on cuda:0 but 'logits' is on cpu"));
  EXPECT_TRUE(rejects([&] { k::cross_entropy_row_sums(logits, 5, targets, 0, row_max, sums64); },
                      "cross_entropy_row_sums: tensor 'sums' is f64 but 'logits' is f32"));
}

TEST_F(KernelOperands, CrossEntropyLossBackward) {
  Tensor logits = f32({3, 5}), targets = int_tensor({0, 4, 2}), targets32 = f32({3});
  Tensor row_max = f32({3}), sums = f32({3, 3}), dlogits = f32({3, 5});
  Tensor row_loss = f32({3}), row_loss_dev = on_cuda({3});
  EXPECT_TRUE(rejects([&] { k::cross_entropy_loss_backward(logits, 5, targets32, 0, row_max, sums, 0.1, 5, -1, 1.0,
                                                           row_loss, dlogits); },
                      "cross_entropy_loss_backward: tensor 'targets' is f32, expected i32"));
  EXPECT_TRUE(rejects([&] { k::cross_entropy_loss_backward(logits, 5, targets, 0, row_max, sums, 0.1, 5, -1, 1.0,
                                                           row_loss_dev, dlogits); },
                      "cross_entropy_loss_backward: tensor 'row_loss' is on cuda:0 but 'logits' is on cpu"));
}

TEST_F(KernelOperands, RowArgmax) {
  Tensor logits = f32({3, 5}), max_value = f32({3}), max_value64 = f64({3});
  Tensor max_index = Tensor::zeros({3}, DType::i32), max_index_dev = on_cuda({3}, DType::i32);
  EXPECT_TRUE(rejects([&] { k::row_argmax(logits, 5, 0, max_value64, max_index); },
                      "row_argmax: tensor 'max_value' is f64 but 'logits' is f32"));
  EXPECT_TRUE(rejects([&] { k::row_argmax(logits, 5, 0, max_value, max_index_dev); },
                      "row_argmax: tensor 'max_index' is on cuda:0 but 'logits' is on cpu"));
}

// ---- optimizer -------------------------------------------------------------------------------
TEST_F(KernelOperands, AdamStep) {
  Tensor param = f32({6}), m = f32({6}), v = Tensor::zeros({6}, DType::f32), v_dev = on_cuda({6});
  EXPECT_TRUE(rejects([&] { k::adam_step(param, f64({6}), m, v, 1e-3, 0.9, 0.98, 1e-9, 1, 1.0); },
                      "adam_step: tensor 'grad' is f64 but 'param' is f32"));
  EXPECT_TRUE(rejects([&] { k::adam_step(param, f32({6}), m, v_dev, 1e-3, 0.9, 0.98, 1e-9, 1, 1.0); },
                      "adam_step: tensor 'v' is on cuda:0 but 'param' is on cpu"));
}

}  // namespace
}  // namespace tessera
