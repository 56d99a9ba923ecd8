// The whole model's gradient against central finite differences, in double precision, with
// dropout, label smoothing and padding on: post-LN and pre-LN, ReLU and GELU, on every device.
#include <gtest/gtest.h>

#include <set>

#include "devices.h"
#include "model/transformer.h"
#include "model_test_util.h"
#include "parallel/self_communicator.h"

namespace tessera {
namespace {
using namespace tessera::testing;

// Runs on the device under test: parameters and gradients live there, each perturbed element is
// written through a one-element view of the flat value buffer, and the gradient is read through a
// host copy.
class ModelGrad : public DeviceTest {
 protected:
  void check_model_gradient(model::ModelConfig cfg) {
    parallel::SelfCommunicator tp("tp");
    model::ParameterStore store;
    model::Transformer net(cfg, store, tp);
    store.finalize(DType::f64, rng()(), device());
    ASSERT_EQ(store.device(), device());
    const model::Batch batch = random_batch(cfg, 3, 5, 4, rng());
    model::StepContext ctx;
    ctx.seed = rng()();
    ctx.step = 3;
    const double scale = 1.0 / static_cast<double>(batch.target_tokens());
    net.forward_backward(batch, ctx, scale, false);
    const Tensor analytic = on_host(store.grads());
    auto loss = [&] {
      store.zero_grads();
      return net.forward_backward(batch, ctx, scale, false).loss_sum * scale;
    };
    // Element i of the parameters, set to `value` wherever they live.
    Tensor scalar = Tensor::empty({1}, DType::f64);
    auto set_weight = [&](int64_t i, double value) {
      scalar.data<double>()[0] = value;
      store.values().view(i, {1}).copy_from(scalar);
    };
    // Finite differences on a sample of elements from every parameter tensor.
    std::set<std::string> checked;
    const Tensor initial = on_host(store.values());  // every element is restored after its check
    const double* w = initial.data<double>();
    const double h = 1e-6;
    for (const auto& p : store.params()) {
      std::uniform_int_distribution<int64_t> pick(0, p.numel() - 1);
      for (int k = 0; k < 3; ++k) {
        const int64_t i = p.offset + pick(rng());
        const double saved = w[i];
        set_weight(i, saved + h);
        const double up = loss();
        set_weight(i, saved - h);
        const double down = loss();
        set_weight(i, saved);
        const double numeric = (up - down) / (2 * h), got = analytic.data<double>()[i];
        EXPECT_NEAR(got, numeric, 1e-7 + 1e-5 * std::abs(numeric)) << p.name << " element " << i - p.offset;
      }
      checked.insert(p.name);
    }
    EXPECT_EQ(checked.size(), store.size());
  }
};
INSTANTIATE_DEVICE_TEST_SUITE(ModelGrad);

TEST_P(ModelGrad, PostLnReluMatchesFiniteDifferences) { check_model_gradient(tiny_test_config(false)); }

TEST_P(ModelGrad, PreLnGeluMatchesFiniteDifferences) {
  model::ModelConfig cfg = tiny_test_config(true);
  cfg.activation = "gelu";
  check_model_gradient(cfg);
}

TEST(ModelGrad, ParameterCountMatchesConfigFormula) {
  for (bool pre_ln : {false, true}) {
    const model::ModelConfig cfg = tiny_test_config(pre_ln);
    parallel::SelfCommunicator tp("tp");
    model::ParameterStore store;
    model::Transformer net(cfg, store, tp);
    int64_t total = 0;
    for (const auto& p : store.params()) total += p.numel();
    EXPECT_EQ(total, cfg.parameter_count());
  }
}

TEST(ModelGrad, BaseConfigHasThePapersParameterCount) {
  model::ModelConfig base;  // defaults are the paper's base model with a 37000-token vocabulary
  base.vocab_size = 37000;
  // Vaswani et al. report 65M for the base model.
  EXPECT_NEAR(static_cast<double>(base.parameter_count()) / 1e6, 63.1, 0.5);
}

}  // namespace
}  // namespace tessera
