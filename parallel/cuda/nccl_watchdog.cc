#include "parallel/cuda/nccl_watchdog.h"

#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>

#include "core/error.h"
#include "core/log.h"
#include "kernels/cuda/cuda_check.h"
#include "parallel/cuda/nccl_check.h"

namespace tessera::parallel {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPoll = std::chrono::milliseconds(5);
// How long ncclCommAbort and MPI_Abort get before the rank leaves by _Exit on its own.
constexpr double kAbortGraceS = 10.0;

bool mpi_usable() {
  int up = 0, down = 0;
  MPI_Initialized(&up);
  MPI_Finalized(&down);
  return up && !down;
}

}  // namespace

NcclWork::~NcclWork() {
  // Allowed before the event completes: CUDA releases it once the device has passed it.
  if (done != nullptr && cudaEventDestroy(done) != cudaSuccess) (void)cudaGetLastError();
}

std::mutex& NcclWatchdog::nccl_mutex() {
  static std::mutex* mu = new std::mutex;  // never destroyed: a detached abort may still use it at exit
  return *mu;
}

NcclWatchdog::NcclWatchdog(double timeout_s) : timeout_s_(timeout_s) {
  if (mpi_usable()) MPI_Comm_rank(MPI_COMM_WORLD, &world_rank_);
  CUDA_CHECK(cudaGetDevice(&device_));
  thread_ = std::thread([this] { loop(); });
}

NcclWatchdog::~NcclWatchdog() { stop(); }

void NcclWatchdog::watch(ncclComm_t comm, std::string group, int size) {
  std::lock_guard lock(mu_);
  comms_.push_back({comm, std::move(group), size});
}

void NcclWatchdog::unwatch_all() {
  std::lock_guard lock(mu_);
  comms_.clear();
}

void NcclWatchdog::track(std::shared_ptr<const NcclWork> work) {
  std::lock_guard lock(mu_);
  pending_.push_back(std::move(work));
}

void NcclWatchdog::drain() {
  std::unique_lock lock(mu_);
  drained_.wait(lock, [this] { return pending_.empty() || stopping_; });
}

void NcclWatchdog::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  drained_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::string NcclWatchdog::timeout_message(std::string_view what, std::string_view group, int size,
                                          std::string_view why) const {
  return detail::concat("tessera: rank ", world_rank_, " (world) timed out after ", timeout_s_, " s in ", what,
                        " on group \"", group, "\" of ", size, " ranks: ", why);
}

void NcclWatchdog::abort_job(const std::string& message) {
  static std::atomic<bool> ending{false};
  if (ending.exchange(true))  // another thread is ending the process already
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
  write_stderr_line(message);
  const int rank = world_rank_;
  std::thread([rank] {
    std::this_thread::sleep_for(std::chrono::duration<double>(kAbortGraceS));
    write_stderr_line(detail::concat("tessera: rank ", rank, " (world): ncclCommAbort or MPI_Abort did not return in ",
                                     kAbortGraceS, " s; exiting"));
    std::_Exit(124);
  }).detach();
  std::vector<Watched> comms;
  {
    std::lock_guard lock(mu_);
    comms = comms_;
  }
  // Aborting makes the kernels stuck on a missing peer return and frees the communicators. The
  // lock stays held until the process ends, so a thread that the abort released blocks at its
  // next NCCL call instead of using a freed communicator.
  nccl_mutex().lock();
  for (const Watched& c : comms) (void)ncclCommAbort(c.comm);
  if (mpi_usable()) MPI_Abort(MPI_COMM_WORLD, 124);
  std::_Exit(124);  // MPI_Abort should not return; never leave this rank behind if it does
}

void NcclWatchdog::loop() {
  const cudaError_t selected = cudaSetDevice(device_);
  if (selected != cudaSuccess)
    abort_job(detail::concat("tessera: rank ", world_rank_, " (world): the NCCL watchdog cannot select GPU ", device_,
                             ": cudaSetDevice failed: ", cudaGetErrorString(selected)));
  std::unique_lock lock(mu_);
  while (!stopping_) {
    wake_.wait_for(lock, kPoll);
    if (stopping_) break;
    lock.unlock();
    check_work();
    check_comms();
    lock.lock();
  }
}

void NcclWatchdog::check_work() {
  std::vector<std::shared_ptr<const NcclWork>> work;
  {
    std::lock_guard lock(mu_);
    work.assign(pending_.begin(), pending_.end());
  }
  const auto now = Clock::now();
  const auto deadline = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s_));
  std::vector<const NcclWork*> finished;
  for (const auto& w : work) {
    const cudaError_t state = cudaEventQuery(w->done);
    if (state == cudaSuccess) {
      finished.push_back(w.get());
    } else if (state != cudaErrorNotReady) {
      abort_job(detail::concat("tessera: rank ", world_rank_, " (world): CUDA error ", cudaGetErrorName(state), " (",
                               cudaGetErrorString(state), ") while waiting for ", w->what, " on group \"", w->group,
                               "\" of ", w->group_size,
                               " ranks (it may come from an earlier kernel); aborting the NCCL communicators"));
    } else if (now - w->issued > deadline) {
      abort_job(timeout_message(w->what, w->group, w->group_size,
                                detail::concat("collective #", w->number,
                                               " of this group has not completed on this rank's GPU (a peer that "
                                               "never issued it, or is stuck before it, holds it up); aborting the "
                                               "NCCL communicators")));
    }
  }
  std::lock_guard lock(mu_);
  pending_.erase(std::remove_if(pending_.begin(), pending_.end(),
                                [&](const auto& w) {
                                  return std::find(finished.begin(), finished.end(), w.get()) != finished.end();
                                }),
                 pending_.end());
  if (pending_.empty()) drained_.notify_all();
}

void NcclWatchdog::check_comms() {
  std::vector<Watched> comms;
  {
    std::lock_guard lock(mu_);
    comms = comms_;
  }
  for (const Watched& c : comms) {
    ncclResult_t state = ncclSuccess, result = ncclSuccess;
    {
      std::lock_guard nccl(nccl_mutex());
      result = ncclCommGetAsyncError(c.comm, &state);
    }
    if (result != ncclSuccess) state = result;
    // ncclInProgress: a non-blocking call (a launch, a finalize) is still running in the background.
    if (state == ncclSuccess || state == ncclInProgress) continue;
    abort_job(detail::concat("tessera: rank ", world_rank_, " (world): NCCL error on group \"", c.group, "\" of ",
                             c.size, " ranks: ", nccl_error_text(state), "; aborting the NCCL communicators"));
  }
}

}  // namespace tessera::parallel
