// Attention of decoding queries against a key/value cache: operand checks, then the fused CPU pass
// (cpu/cached_attention_cpu.cc) or, on a GPU and for bf16 products, the two leading-rows products
// (cuBLAS) around the masked softmax.
#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"

namespace tessera::kernels {

void cached_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t sk, const Tensor& key_lengths,
                      bool causal, double scale, Tensor& ctx, Precision precision) {
  const char* op = "cached_attention";
  check_operands(op, {{q, "q"}, {k, "k"}, {v, "v"}, {key_lengths, "key_lengths", Operand::index}, {ctx, "ctx"}});
  check_ndim(q, 4, op, "q");
  check_ndim(k, 4, op, "k");
  const int64_t b = q.dim(0), heads = q.dim(1), sq = q.dim(2), dk = q.dim(3), capacity = k.dim(2);
  check_shape(k, {b, heads, capacity, dk}, op, "k");
  check_shape(v, k.shape(), op, "v");
  check_shape(ctx, q.shape(), op, "ctx");
  check_shape(key_lengths, {b}, op, "key_lengths");
  TESSERA_CHECK(sk >= 0 && sk <= capacity, op, ": ", sk, " cached positions requested of a cache holding ", capacity);
  TESSERA_CHECK(!causal || sk >= sq, op, ": causal mask needs at least as many keys (", sk, ") as queries (", sq, ")");
  if (q.device().is_cpu() && precision == Precision::fp32) {
    TESSERA_DISPATCH_FLOAT(q.dtype(), op,
                           cpu::cached_attention(q.data<scalar_t>(), k.data<scalar_t>(), v.data<scalar_t>(), capacity,
                                                 sk, key_lengths.data<int32_t>(), causal, static_cast<scalar_t>(scale),
                                                 ctx.data<scalar_t>(), b, heads, sq, dk));
    return;
  }
  // scores = Q K^T over the filled positions, softmax in place, ctx = P V.
  const int64_t bh = b * heads;
  Tensor probs = Tensor::empty({b, heads, sq, sk}, q.dtype(), q.device());
  Tensor scores3 = probs.reshape({bh, sq, sk});
  batched_matmul_leading_rows(q.reshape({bh, sq, dk}), false, k.reshape({bh, capacity, dk}), sk, true, scores3, 1.0,
                              0.0, precision);
  masked_softmax_forward(probs, key_lengths, causal, scale, probs);
  Tensor ctx3 = ctx.reshape({bh, sq, dk});
  batched_matmul_leading_rows(scores3, false, v.reshape({bh, capacity, dk}), sk, false, ctx3, 1.0, 0.0, precision);
}

}  // namespace tessera::kernels
