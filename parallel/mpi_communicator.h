// Collectives over MPI for host buffers, with a deadline and real compute/communication overlap.
//
// Open MPI only moves a non-blocking collective forward while some thread is inside an MPI call,
// so "start the all-reduce, then compute" would not overlap on its own. Instead each
// MpiCommunicator owns one progress thread and a FIFO queue: every collective, blocking or not,
// is queued and the progress thread runs them one after another with the blocking MPI call. An
// async all-reduce therefore moves data while the caller computes, and a blocking call issued
// behind pending async ones runs after them, keeping the order identical on every rank.
// Needs MPI_THREAD_MULTIPLE (see mpi_runtime.h): the progress threads of the tp, dp and world
// communicators call MPI concurrently.
#pragma once

#include <mpi.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "parallel/communicator.h"

namespace tessera::parallel {

// The MPI datatype that carries `dtype` in a collective that only moves data (bf16 as 16-bit
// words); for a type MPI cannot carry, an error naming `what`.
MPI_Datatype mpi_copy_type(DType dtype, const std::string& what);

class MpiCommunicator final : public Communicator {
 public:
  // Duplicates comm, so this communicator's traffic never mixes with other users of comm.
  // timeout_s is the deadline of every collective (the --collective-timeout option): a wait that
  // lasts longer prints a diagnostic and calls MPI_Abort(MPI_COMM_WORLD, 124).
  MpiCommunicator(MPI_Comm comm, std::string group_name, double timeout_s);
  // Finishes the queued collectives (under the deadline), stops the progress thread and frees
  // the duplicated communicator. Must run before finalize_mpi().
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& group_name() const override { return group_name_; }
  double timeout_s() const { return timeout_s_; }

  using Communicator::all_gather;
  using Communicator::all_reduce;
  using Communicator::all_reduce_async;
  using Communicator::broadcast;
  using Communicator::reduce_scatter;

  // Supports f32, f64 and i32; bf16 only in all_gather and broadcast, which just move bits
  // (reductions reject it: MPI has no bf16 arithmetic).
  void all_reduce(void* buf, size_t count, DType dtype, ReduceOp op) override;
  // Async calls queue behind earlier collectives and move data while the caller computes; the
  // StreamOrder is ignored (host buffers are ordered by the progress thread's queue).
  std::unique_ptr<CollectiveHandle> all_reduce_async(void* buf, size_t count, DType dtype,
                                                     ReduceOp op, StreamOrder order = {}) override;
  void all_gather(const void* send, void* recv, size_t send_count, DType dtype) override;
  std::unique_ptr<CollectiveHandle> all_gather_async(const void* send, void* recv, size_t send_count,
                                                     DType dtype, StreamOrder order = {}) override;
  void reduce_scatter(const void* send, void* recv, size_t recv_count, DType dtype,
                      ReduceOp op) override;
  std::unique_ptr<CollectiveHandle> reduce_scatter_async(const void* send, void* recv, size_t recv_count,
                                                         DType dtype, ReduceOp op,
                                                         StreamOrder order = {}) override;
  void broadcast(void* buf, size_t count, DType dtype, int root) override;
  void barrier() override;
  void set_wait_deadline(double seconds, const std::string& reason) override;
  void clear_wait_deadline() override;

 private:
  struct Op;     // one queued collective, shared by the queue and the handle that waits on it
  class Handle;  // the CollectiveHandle of an async all-reduce

  std::shared_ptr<Op> submit(std::string what, std::function<void()> run);
  void progress_loop();
  // Blocks until op is done; past the deadline prints the diagnostic and aborts the job.
  void wait_for(const Op& op);
  uint64_t running_collective();  // running_, read under mu_
  // Tells every peer, on arrivals_, which collective this rank is in (a long wait has begun).
  void announce_arrival();
  // Which peers did not reach the collective this rank is stuck in, from their announcements.
  std::string who_is_missing();
  [[noreturn]] void abort_on_timeout(const Op& op);

  MPI_Comm comm_ = MPI_COMM_NULL;
  // Finding the rank that did not arrive: when a wait passes a quarter of the deadline, the
  // waiting rank sends the sequence number of the collective it is in to every peer on this
  // duplicate of comm_; at the deadline it reads what its peers sent. Peers that sent nothing (or
  // an earlier number) never reached that collective. Only slow collectives send anything.
  MPI_Comm arrivals_ = MPI_COMM_NULL;
  std::vector<int> world_ranks_;       // world rank of each rank of the group
  uint64_t submitted_ = 0;             // collectives queued so far (the next one's number)
  uint64_t running_ = 0;               // number of the collective the progress thread runs, from 1
  std::string group_name_;
  double timeout_s_;
  // set_wait_deadline's override (0: none) and what it says the group waits for; set and read by
  // the thread that waits.
  double wait_timeout_s_ = 0;
  std::string wait_reason_;
  double current_timeout() const { return wait_timeout_s_ > 0 ? wait_timeout_s_ : timeout_s_; }
  int rank_ = 0, size_ = 1, world_rank_ = 0;

  std::mutex mu_;                      // guards queue_, stopping_, every Op's done/error
  std::condition_variable work_cv_;    // wakes the progress thread
  std::condition_variable done_cv_;    // wakes waiters when an Op finishes
  std::deque<std::shared_ptr<Op>> queue_;
  std::shared_ptr<Op> last_;           // the most recently submitted Op
  bool stopping_ = false;
  std::thread progress_;
};

}  // namespace tessera::parallel
