#include "parallel/cuda/nccl_session.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "kernels/cuda/cuda_check.h"
#include "parallel/cuda/nccl_check.h"
#include "parallel/cuda/nccl_communicator.h"

namespace tessera::parallel {
namespace {

using Clock = std::chrono::steady_clock;

// NCCL orders the collectives of different communicators on one GPU by their host issue order
// only when NCCL_LAUNCH_ORDER_IMPLICIT=1 (NCCL 2.26+); Tessera issues every collective from one
// thread, in the same order on every rank, which is what that mode asks for. A value the user
// set wins. Must run before the first NCCL call, which reads the environment.
bool enable_implicit_launch_order() {
  setenv("NCCL_LAUNCH_ORDER_IMPLICIT", "1", /*overwrite=*/0);
  const char* value = std::getenv("NCCL_LAUNCH_ORDER_IMPLICIT");
  int version = 0;
  NCCL_CHECK(ncclGetVersion(&version));
  const bool on = value != nullptr && std::strcmp(value, "0") != 0 && version >= NCCL_VERSION(2, 26, 0);
  if (!on)
    TESSERA_LOG_WARN("NCCL ", version, " with NCCL_LAUNCH_ORDER_IMPLICIT=", value != nullptr ? value : "",
                     ": tensor- and data-parallel collectives cannot run concurrently on two streams without "
                     "deadlock risk, so they all run on the compute stream (no overlap); use NCCL 2.26 or newer");
  return on;
}

// NCCL needs a GPU of its own for every rank; two ranks on one GPU would fail or hang inside NCCL.
// GPUs are compared by UUID, so ranks that each see "GPU 0" through CUDA_VISIBLE_DEVICES are fine.
void check_one_gpu_per_rank(Communicator& world) {
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  constexpr size_t kWords = sizeof(prop.uuid) / sizeof(int32_t);
  std::vector<int32_t> mine(kWords), all(kWords * static_cast<size_t>(world.size()));
  std::memcpy(mine.data(), &prop.uuid, sizeof(prop.uuid));
  world.all_gather(mine.data(), all.data(), kWords, DType::i32);
  for (int r = 0; r < world.size(); ++r)
    for (int s = r + 1; s < world.size(); ++s)
      TESSERA_CHECK(!std::equal(all.begin() + r * kWords, all.begin() + (r + 1) * kWords, all.begin() + s * kWords),
                    "--device cuda: world ranks ", r, " and ", s, " use the same GPU, and NCCL needs one GPU per "
                    "rank: start at most as many ranks per node as it has GPUs (mpirun --npernode G, srun "
                    "--gpus-per-task=1)");
}

}  // namespace

NcclGroups make_nccl_groups(std::unique_ptr<Communicator> world, NcclGroupSpec tp, NcclGroupSpec dp,
                            double timeout_s) {
  TESSERA_CHECK(timeout_s > 0, "--collective-timeout must be positive, got ", timeout_s);
  check_one_gpu_per_rank(*world);
  auto session = std::make_shared<NcclSession>(timeout_s);
  // The id is opaque bytes; it travels as i32 words because DType has no byte type.
  ncclUniqueId id{};
  static_assert(sizeof(id) % sizeof(int32_t) == 0);
  if (world->rank() == 0) {
    std::lock_guard lock(NcclWatchdog::nccl_mutex());
    NCCL_CHECK(ncclGetUniqueId(&id));
  }
  world->broadcast(&id, sizeof(id) / sizeof(int32_t), DType::i32, 0);

  ncclComm_t world_comm = session->init(id, world->size(), world->rank(), "world");
  ncclComm_t tp_comm = session->split(world_comm, tp.color, tp.key, "tp", tp.host->size());
  ncclComm_t dp_comm = session->split(world_comm, dp.color, dp.key, "dp", dp.host->size());
  NcclGroups groups;
  groups.world = std::make_unique<NcclCommunicator>(session, world_comm, std::move(world));
  groups.tp = std::make_unique<NcclCommunicator>(session, tp_comm, std::move(tp.host));
  groups.dp = std::make_unique<NcclCommunicator>(session, dp_comm, std::move(dp.host));
  return groups;
}

NcclSession::NcclSession(double timeout_s)
    : implicit_order_(enable_implicit_launch_order()), watchdog_(timeout_s) {}

NcclSession::~NcclSession() {
  if (std::uncaught_exceptions() > 0) {
    // Unwinding from an error on this rank: the peers may be anywhere, so nothing collective
    // (ncclCommFinalize synchronises with them); aborting frees this rank's communicators.
    watchdog_.stop();
    abort_all();
    return;
  }
  // The watchdog keeps enforcing the deadline while the outstanding collectives finish.
  watchdog_.drain();
  watchdog_.stop();
  finalize_all();
}

void NcclSession::adopt(ncclComm_t comm, const std::string& group, int size) {
  members_.push_back({comm, group, size});
  watchdog_.watch(comm, group, size);
}

ncclComm_t NcclSession::init(const ncclUniqueId& id, int size, int rank, const std::string& group) {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // every call returns at once; see settle()
  ncclComm_t comm = nullptr;
  ncclResult_t result = ncclSuccess;
  {
    std::lock_guard lock(NcclWatchdog::nccl_mutex());
    result = ncclCommInitRankConfig(&comm, size, id, rank, &config);
  }
  if (comm != nullptr && (result == ncclSuccess || result == ncclInProgress)) adopt(comm, group, size);
  settle(comm, result, "ncclCommInitRankConfig", group, size);
  return comm;
}

ncclComm_t NcclSession::split(ncclComm_t parent, int color, int key, const std::string& group, int size) {
  // The child inherits the parent's configuration (non-blocking). While the split runs, the
  // parent's state is ncclInProgress and the child handle stays null; NCCL writes it on success.
  ncclComm_t child = nullptr;
  ncclResult_t result = ncclSuccess;
  {
    std::lock_guard lock(NcclWatchdog::nccl_mutex());
    result = ncclCommSplit(parent, color, key, &child, /*config=*/nullptr);
  }
  const std::string what = detail::concat("ncclCommSplit(color=", color, ", key=", key, ")");
  settle(parent, result, what, group, size);
  TESSERA_CHECK(child != nullptr, what, " for group \"", group, "\" returned no communicator");
  adopt(child, group, size);
  settle(child, ncclInProgress, what, group, size);
  int count = 0;
  {
    std::lock_guard lock(NcclWatchdog::nccl_mutex());
    NCCL_CHECK(ncclCommCount(child, &count));
  }
  TESSERA_CHECK(count == size, what, ": the NCCL \"", group, "\" group has ", count, " ranks, the MPI one ", size);
  return child;
}

void NcclSession::settle(ncclComm_t comm, ncclResult_t returned, std::string_view what, std::string_view group,
                         int size) {
  if (returned == ncclSuccess) return;
  TESSERA_CHECK(returned == ncclInProgress, what, " on group \"", group, "\" of ", size,
                " ranks failed: ", nccl_error_text(returned));
  const auto deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(watchdog_.timeout_s()));
  for (int polls = 0;; ++polls) {
    ncclResult_t state = ncclSuccess, result = ncclSuccess;
    {
      std::lock_guard lock(NcclWatchdog::nccl_mutex());
      result = ncclCommGetAsyncError(comm, &state);
    }
    if (result != ncclSuccess) state = result;
    if (state == ncclSuccess) return;
    if (state != ncclInProgress)
      watchdog_.abort_job(detail::concat("tessera: rank ", watchdog_.world_rank(), " (world): ", what,
                                         " on group \"", group, "\" of ", size, " ranks failed in NCCL: ",
                                         nccl_error_text(state), "; aborting the NCCL communicators"));
    if (Clock::now() > deadline)
      watchdog_.abort_job(watchdog_.timeout_message(
          what, group, size,
          "NCCL has not finished it on this rank (a peer that never called it holds it up); aborting the NCCL "
          "communicators"));
    // A launch finishes in microseconds, a communicator's creation in up to seconds.
    if (polls < 1000) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
}

void NcclSession::finalize_all() {
  try {
    // Non-blocking finalize of every communicator first, then wait for all: each one flushes its
    // work and synchronises with its peers in the background.
    std::vector<ncclResult_t> started;
    for (const Member& m : members_) {
      std::lock_guard lock(NcclWatchdog::nccl_mutex());
      started.push_back(ncclCommFinalize(m.comm));
    }
    for (size_t i = 0; i < members_.size(); ++i)
      settle(members_[i].comm, started[i], "ncclCommFinalize", members_[i].group, members_[i].size);
  } catch (const std::exception& e) {
    write_stderr_line(detail::concat("tessera: rank ", watchdog_.world_rank(), " (world): ", e.what(),
                                     "; aborting the NCCL communicators instead"));
    abort_all();
    return;
  }
  // Finalized communicators are destroyed locally, without waiting for anyone.
  watchdog_.unwatch_all();
  std::lock_guard lock(NcclWatchdog::nccl_mutex());
  for (const Member& m : members_) (void)ncclCommDestroy(m.comm);
  members_.clear();
}

void NcclSession::abort_all() {
  watchdog_.unwatch_all();
  std::lock_guard lock(NcclWatchdog::nccl_mutex());
  for (const Member& m : members_) (void)ncclCommAbort(m.comm);
  members_.clear();
}

}  // namespace tessera::parallel
