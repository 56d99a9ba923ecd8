// Tests written once and run on every backend (the CTranslate2 habit): a suite derives from
// DeviceTest and is instantiated with INSTANTIATE_DEVICE_TEST_SUITE(Suite), which gives each test a
// /cpu and a /cuda instance. The cuda instance exists in every build, so `ctest -N` lists it, and
// skips saying why when the build has no CUDA backend or the machine no GPU.
#pragma once

#include <gtest/gtest.h>

#include <ostream>
#include <string>

#include "core/tensor.h"
#if defined(TESSERA_WITH_CUDA)
#include "kernels/cuda/runtime.h"
#endif

namespace tessera {
// So gtest prints a device parameter as "cpu" / "cuda:0" instead of its bytes (found by ADL).
inline void PrintTo(const Device& device, std::ostream* os) { *os << device_name(device); }
}  // namespace tessera

namespace tessera::testing {

// Why tensors cannot be placed on `device` here, or "" when they can.
inline std::string device_unavailable_reason(Device device) {
  if (device.is_cpu()) return "";
#if defined(TESSERA_WITH_CUDA)
  return kernels::cuda::device_available() ? "" : kernels::cuda::unavailable_reason();
#else
  return "this build has no CUDA backend (configured without nvcc or with -DTESSERA_CUDA=OFF)";
#endif
}

class DeviceTest : public ::testing::TestWithParam<Device> {
 protected:
  void SetUp() override {
    const std::string why = device_unavailable_reason(GetParam());
    if (!why.empty()) GTEST_SKIP() << "skipped on " << device_name(GetParam()) << ": " << why;
  }
  Device device() const { return GetParam(); }
  // A copy of a host tensor on the device under test, and back.
  Tensor on_device(const Tensor& host) const { return host.to(device()); }
  static Tensor on_host(const Tensor& t) { return t.to(Device::cpu); }
};

inline std::string device_param_name(const ::testing::TestParamInfo<Device>& info) {
  return info.param.is_cpu() ? "cpu" : "cuda";
}

}  // namespace tessera::testing

#define INSTANTIATE_DEVICE_TEST_SUITE(suite)                                                    \
  INSTANTIATE_TEST_SUITE_P(Devices, suite, ::testing::Values(::tessera::Device::cpu,            \
                                                             ::tessera::Device::cuda(0)),       \
                           ::tessera::testing::device_param_name)
