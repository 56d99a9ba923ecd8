#include "parallel/compute_device.h"

#include <unistd.h>

#include <climits>

#include "core/error.h"
#include "core/log.h"
#include "parallel/mpi_runtime.h"
#if defined(TESSERA_WITH_CUDA)
#include "kernels/cuda/runtime.h"
#endif

namespace tessera::parallel {

DeviceKind parse_device_kind(std::string_view text) {
  if (text == "cpu") return DeviceKind::cpu;
  if (text == "cuda") return DeviceKind::cuda;
  TESSERA_FAIL("--device: '", text, "' is not one of cpu, cuda");
}

NodePlacement node_placement() {
  NodePlacement p;
  char host[HOST_NAME_MAX + 1] = {};
  if (gethostname(host, sizeof host - 1) == 0) p.host = host;
  p.local_rank = local_rank();
  p.local_ranks = local_size();
  return p;
}

Device select_compute_device(std::string_view kind_text) {
  if (parse_device_kind(kind_text) == DeviceKind::cpu) return Device::cpu;
  const NodePlacement placement = node_placement();
#if defined(TESSERA_WITH_CUDA)
  try {
    const kernels::cuda::DeviceInfo gpu = kernels::cuda::select_device(placement.local_rank, placement.local_ranks);
    TESSERA_LOG_INFO("device cuda:", gpu.ordinal, " (", gpu.name, ", compute capability ", gpu.major, ".", gpu.minor,
                     ", ", gpu.memory_bytes >> 20, " MiB) for local rank ", placement.local_rank, " of ",
                     placement.local_ranks, " on ", placement.host);
    return Device::cuda(gpu.ordinal);
  } catch (const Error& e) {
    TESSERA_FAIL("on host ", placement.host, ", local rank ", placement.local_rank, ": ", e.what());
  }
#else
  TESSERA_FAIL("--device cuda: this build of Tessera has no CUDA backend (it was configured without nvcc, or with "
               "-DTESSERA_CUDA=OFF); rebuild on a machine with the CUDA toolkit, or use --device cpu");
#endif
}

}  // namespace tessera::parallel
