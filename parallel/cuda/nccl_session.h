// The NCCL communicators of one process grid, from birth to end.
//
// World rank 0 creates an ncclUniqueId and broadcasts it over MPI; every rank creates the world
// communicator from it, and the tp and dp communicators are split from the world one
// (ncclCommSplit, with the colors and keys of the MPI split). All are non-blocking
// (ncclConfig_t.blocking = 0): no NCCL call can hold the host, a call may instead return
// ncclInProgress and finish in the background, and settle() polls it to the end under the
// collective deadline. The session owns the communicators and the watchdog; it ends them when
// the last NcclCommunicator goes: after their work completed with ncclCommFinalize and
// ncclCommDestroy, or, while an exception unwinds, with ncclCommAbort.
#pragma once

#include <nccl.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "parallel/communicator.h"
#include "parallel/cuda/nccl_watchdog.h"

namespace tessera::parallel {

// A group to split from the world: its MPI communicator (kept for host buffers) and the color and
// key it was split with.
struct NcclGroupSpec {
  std::unique_ptr<Communicator> host;
  int color = 0;
  int key = 0;
};

struct NcclGroups {
  std::unique_ptr<Communicator> world, tp, dp;
};

// Collective over the world, on the rank's selected GPU: wraps the three MPI communicators into
// NcclCommunicators of one session. Throws tessera::Error when NCCL refuses a call; ends the job
// (exit 124) when a rank does not finish creating a communicator within timeout_s.
NcclGroups make_nccl_groups(std::unique_ptr<Communicator> world, NcclGroupSpec tp, NcclGroupSpec dp,
                            double timeout_s);

class NcclSession {
 public:
  explicit NcclSession(double timeout_s);
  ~NcclSession();
  NcclSession(const NcclSession&) = delete;
  NcclSession& operator=(const NcclSession&) = delete;

  NcclWatchdog& watchdog() { return watchdog_; }
  // Whether NCCL orders the collectives of different communicators by their host issue order
  // (NCCL_LAUNCH_ORDER_IMPLICIT, NCCL 2.26+), so the dp group may run on its own stream while the
  // tp group runs on the compute stream. Otherwise every collective stays on the compute stream.
  bool implicit_order() const { return implicit_order_; }

  // ncclCommInitRankConfig of rank `rank` of `size`, polled to completion.
  ncclComm_t init(const ncclUniqueId& id, int size, int rank, const std::string& group);
  // ncclCommSplit of `parent` (no NCCL work outstanding on it), polled to completion.
  ncclComm_t split(ncclComm_t parent, int color, int key, const std::string& group, int size);

  // After an NCCL call on `comm` that returned `returned`: ncclSuccess returns at once; an error
  // throws naming `what` (the call had no effect); ncclInProgress waits, polling
  // ncclCommGetAsyncError, until NCCL finished the call in the background, because nothing may
  // touch the communicator or the streams it uses before then. An asynchronous error, or no
  // completion within the deadline, ends the job.
  void settle(ncclComm_t comm, ncclResult_t returned, std::string_view what, std::string_view group, int size);

 private:
  struct Member {
    ncclComm_t comm;
    std::string group;
    int size;
  };

  void adopt(ncclComm_t comm, const std::string& group, int size);
  void finalize_all();  // normal end: every member finalized and destroyed
  void abort_all();     // error path: every member aborted

  std::vector<Member> members_;
  bool implicit_order_ = false;
  NcclWatchdog watchdog_;
};

}  // namespace tessera::parallel
