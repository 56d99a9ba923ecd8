// A named range of host time that profilers show: an NVTX range (Nsight Systems) in builds with
// the CUDA backend, nothing otherwise. Put one around each layer's forward and backward.
#pragma once

#include <string>

#if defined(TESSERA_WITH_CUDA)
#include "kernels/cuda/runtime.h"
#endif

namespace tessera::kernels {

class TraceRange {
 public:
#if defined(TESSERA_WITH_CUDA)
  explicit TraceRange(const std::string& name) : range_(name.c_str()) {}

 private:
  cuda::NvtxRange range_;
#else
  explicit TraceRange(const std::string&) {}
#endif
};

}  // namespace tessera::kernels
