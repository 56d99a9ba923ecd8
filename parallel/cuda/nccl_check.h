// One-word checks for NCCL calls that must return ncclSuccess: a failure throws tessera::Error
// naming the call, NCCL's description of the result and its last error message. Calls on a
// non-blocking communicator may also return ncclInProgress; those go through NcclSession::settle.
#pragma once

#include <nccl.h>

#include <string>

#include "core/error.h"

namespace tessera::parallel {

// "unhandled system error (...): <ncclGetLastError>" for a failed result.
inline std::string nccl_error_text(ncclResult_t result) {
  const char* last = ncclGetLastError(nullptr);
  return detail::concat(ncclGetErrorString(result), last != nullptr && *last != '\0' ? ": " : "",
                        last != nullptr ? last : "");
}

}  // namespace tessera::parallel

#define NCCL_CHECK(call)                                                                           \
  do {                                                                                             \
    const ncclResult_t nccl_check_result = (call);                                                 \
    if (nccl_check_result != ncclSuccess)                                                          \
      ::tessera::detail::throw_error(                                                              \
          __FILE__, __LINE__,                                                                      \
          ::tessera::detail::concat(#call, " failed: ",                                            \
                                    ::tessera::parallel::nccl_error_text(nccl_check_result)));     \
  } while (0)
