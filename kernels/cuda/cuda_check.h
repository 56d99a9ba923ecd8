// One-word error checks for CUDA runtime and cuBLAS calls: a failure throws tessera::Error naming
// the call, the library's own description of the status, and the file and line.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/error.h"

#define CUDA_CHECK(call)                                                                        \
  do {                                                                                          \
    const cudaError_t cuda_check_status = (call);                                               \
    if (cuda_check_status != cudaSuccess)                                                       \
      ::tessera::detail::throw_error(                                                           \
          __FILE__, __LINE__,                                                                   \
          ::tessera::detail::concat(#call, " failed: ", cudaGetErrorName(cuda_check_status),   \
                                    " (", cudaGetErrorString(cuda_check_status), ")"));          \
  } while (0)

#define CUBLAS_CHECK(call)                                                                      \
  do {                                                                                          \
    const cublasStatus_t cublas_check_status = (call);                                          \
    if (cublas_check_status != CUBLAS_STATUS_SUCCESS)                                           \
      ::tessera::detail::throw_error(                                                           \
          __FILE__, __LINE__,                                                                   \
          ::tessera::detail::concat(#call, " failed: ", cublasGetStatusName(cublas_check_status), \
                                    " (", cublasGetStatusString(cublas_check_status), ")"));     \
  } while (0)
