// The deadline of NCCL work, and the one way a grid's NCCL communicators end on an error.
//
// An NCCL collective is enqueued on a CUDA stream and the call returns, so no host thread waits
// where a deadline could be checked. The watchdog thread polls the done event of every
// outstanding collective (cudaEventQuery) and every communicator's asynchronous error
// (ncclCommGetAsyncError). A collective older than --collective-timeout, or an error, ends the
// job: one line names the rank, collective and group (worded as MpiCommunicator's), every
// communicator of the grid is aborted (ncclCommAbort; never ncclCommFinalize on an error path),
// then MPI_Abort(MPI_COMM_WORLD, 124). A rank whose ncclCommAbort or MPI_Abort hangs (a dead
// network) still exits with 124 after a grace period.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace tessera::parallel {

// One enqueued collective, shared by the watchdog and the handle that waits on it.
struct NcclWork {
  std::string what;            // e.g. "all_reduce(count=4096, f32, sum)"
  std::string group;           // "tp", "dp" or "world"
  int group_size = 1;
  uint64_t number = 0;         // 1, 2, ... in issue order on its group
  cudaEvent_t done = nullptr;  // recorded on the collective's stream right after it; owned
  std::chrono::steady_clock::time_point issued;
  NcclWork() = default;
  NcclWork(const NcclWork&) = delete;
  NcclWork& operator=(const NcclWork&) = delete;
  ~NcclWork();
};

class NcclWatchdog {
 public:
  // Starts the thread on the calling thread's CUDA device (the rank's GPU).
  explicit NcclWatchdog(double timeout_s);
  ~NcclWatchdog();
  NcclWatchdog(const NcclWatchdog&) = delete;
  NcclWatchdog& operator=(const NcclWatchdog&) = delete;

  // Every NCCL call of the process holds this lock. NCCL allows one thread at a time on a
  // communicator (and on the communicators of one device), and ncclCommAbort only while no other
  // thread is inside NCCL; the calls on a non-blocking communicator return at once, so it is
  // never held for long.
  static std::mutex& nccl_mutex();

  double timeout_s() const { return timeout_s_; }
  int world_rank() const { return world_rank_; }

  // `comm` is polled for asynchronous errors and aborted when the job ends on an error.
  void watch(ncclComm_t comm, std::string group, int size);
  // Stops watching every communicator (before they are destroyed).
  void unwatch_all();
  // Watches `work` until its done event completes.
  void track(std::shared_ptr<const NcclWork> work);
  // Returns once every tracked collective has completed (the deadline still applies).
  void drain();
  // Stops and joins the thread; afterwards only abort_job may still be called.
  void stop();

  // "tessera: rank R (world) timed out after T s in <what> on group "<g>" of N ranks: <why>"
  std::string timeout_message(std::string_view what, std::string_view group, int size, std::string_view why) const;
  // Prints `message`, aborts every watched communicator and ends the job with exit code 124.
  // Safe from any thread; a second caller waits for the first to end the process.
  [[noreturn]] void abort_job(const std::string& message);

 private:
  struct Watched {
    ncclComm_t comm;
    std::string group;
    int size;
  };

  void loop();
  void check_work();
  void check_comms();

  double timeout_s_;
  int world_rank_ = 0;
  int device_ = 0;

  std::mutex mu_;                    // guards everything below
  std::condition_variable wake_;     // stop() and drain() wake the loop
  std::condition_variable drained_;  // the loop tells drain() that nothing is pending
  std::deque<std::shared_ptr<const NcclWork>> pending_;
  std::vector<Watched> comms_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace tessera::parallel
