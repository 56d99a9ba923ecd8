#include "parallel/mpi_communicator.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "parallel/mpi_runtime.h"

// Every MPI call is checked and a failure names the call.
#define MPI_CHECK(call)                                                                  \
  do {                                                                                   \
    int mpi_check_rc = (call);                                                           \
    TESSERA_CHECK(mpi_check_rc == MPI_SUCCESS, #call, " failed with MPI error ", mpi_check_rc); \
  } while (0)

namespace tessera::parallel {

struct MpiCommunicator::Op {
  std::string what;           // e.g. "all_reduce(count=4096, f32, sum)"
  uint64_t number = 0;        // 1, 2, ... in the order collectives were queued on this group
  std::function<void()> run;  // the MPI call(s), run on the progress thread
  bool done = false;          // guarded by the communicator's mu_
  std::exception_ptr error;
};

class MpiCommunicator::Handle final : public CollectiveHandle {
 public:
  Handle(MpiCommunicator& comm, std::shared_ptr<Op> op) : comm_(comm), op_(std::move(op)) {}
  void wait() override { comm_.wait_for(*op_); }

 private:
  MpiCommunicator& comm_;
  std::shared_ptr<Op> op_;
};

namespace {

MPI_Datatype mpi_type(DType dtype, const std::string& what) {
  switch (dtype) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::i32: return MPI_INT32_T;
    case DType::bf16: break;
  }
  TESSERA_FAIL(what, ": the MPI communicator does not support ", dtype_name(dtype),
               " (MPI has no bf16 reduction); convert to f32 or use the NCCL communicator");
}

// avg is computed as a sum followed by this division.
MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::max ? MPI_MAX : MPI_SUM; }

int mpi_count(size_t count, const std::string& what) {
  TESSERA_CHECK(count <= static_cast<size_t>(INT_MAX), what, ": count exceeds MPI's int limit ",
                INT_MAX, "; split the buffer");
  return static_cast<int>(count);
}

template <typename T>
void divide(void* buf, size_t count, int n) {
  T* p = static_cast<T*>(buf);
  for (size_t i = 0; i < count; ++i) p[i] /= static_cast<T>(n);
}

void divide_by(void* buf, size_t count, DType dtype, int n) {
  switch (dtype) {
    case DType::f32: divide<float>(buf, count, n); break;
    case DType::f64: divide<double>(buf, count, n); break;
    case DType::i32: divide<int32_t>(buf, count, n); break;
    case DType::bf16: break;
  }
}

}  // namespace

// Collectives that only move data carry bf16 as opaque 16-bit words.
MPI_Datatype mpi_copy_type(DType dtype, const std::string& what) {
  return dtype == DType::bf16 ? MPI_UINT16_T : mpi_type(dtype, what);
}

MpiCommunicator::MpiCommunicator(MPI_Comm comm, std::string group_name, double timeout_s)
    : group_name_(std::move(group_name)), timeout_s_(timeout_s) {
  TESSERA_CHECK(timeout_s > 0, "--collective-timeout must be positive, got ", timeout_s);
  MPI_CHECK(MPI_Comm_dup(comm, &comm_));
  MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  MPI_CHECK(MPI_Comm_size(comm_, &size_));
  MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &world_rank_));
  MPI_CHECK(MPI_Comm_dup(comm_, &arrivals_));
  MPI_Group group = MPI_GROUP_NULL, world = MPI_GROUP_NULL;
  MPI_CHECK(MPI_Comm_group(comm_, &group));
  MPI_CHECK(MPI_Comm_group(MPI_COMM_WORLD, &world));
  std::vector<int> ranks(static_cast<size_t>(size_));
  for (int r = 0; r < size_; ++r) ranks[static_cast<size_t>(r)] = r;
  world_ranks_.resize(ranks.size());
  MPI_CHECK(MPI_Group_translate_ranks(group, size_, ranks.data(), world, world_ranks_.data()));
  MPI_Group_free(&group);
  MPI_Group_free(&world);
  progress_ = std::thread([this] { progress_loop(); });
}

MpiCommunicator::~MpiCommunicator() {
  std::shared_ptr<Op> last;
  {
    std::lock_guard lock(mu_);
    last = last_;
  }
  // Unwinding from an error on this rank: a collective still queued may never finish (the peers
  // are elsewhere), and waiting for it would hold back the report of the error until the
  // deadline. The error handler (run_with_mpi) ends the job with MPI_Abort right after, so the
  // progress thread, blocked inside MPI, is left to die with the process.
  if (last && std::uncaught_exceptions() > 0) {
    std::unique_lock lock(mu_);
    if (!last->done) {
      lock.unlock();
      progress_.detach();
      return;
    }
  }
  // The queue runs in order, so once the last op is done every op is. Its error, if any, was
  // already reported to whoever waited on it; a destructor must not throw it again.
  if (last) {
    try {
      wait_for(*last);
    } catch (const std::exception&) {
    }
  }
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_one();
  progress_.join();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) {
    MPI_Comm_free(&arrivals_);
    MPI_Comm_free(&comm_);
  }
}

std::shared_ptr<MpiCommunicator::Op> MpiCommunicator::submit(std::string what,
                                                             std::function<void()> run) {
  auto op = std::make_shared<Op>();
  op->what = std::move(what);
  op->run = std::move(run);
  {
    std::lock_guard lock(mu_);
    op->number = ++submitted_;
    queue_.push_back(op);
    last_ = op;
  }
  work_cv_.notify_one();
  return op;
}

void MpiCommunicator::progress_loop() {
  for (;;) {
    std::shared_ptr<Op> op;
    {
      std::unique_lock lock(mu_);
      work_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to run
      op = queue_.front();
      queue_.pop_front();
      running_ = op->number;
    }
    std::exception_ptr error;
    try {
      op->run();
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard lock(mu_);
      op->done = true;
      op->error = error;
      op->run = nullptr;  // release captured state early
    }
    done_cv_.notify_all();
  }
}

void MpiCommunicator::wait_for(const Op& op) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const auto after = [&](double seconds) {
    return start + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(seconds));
  };
  std::unique_lock lock(mu_);
  const double timeout = current_timeout();
  if (!done_cv_.wait_until(lock, after(timeout / 4), [&] { return op.done; })) {
    lock.unlock();
    announce_arrival();
    lock.lock();
    if (!done_cv_.wait_until(lock, after(timeout), [&] { return op.done; })) {
      lock.unlock();
      abort_on_timeout(op);
    }
  }
  add_host_wait_seconds(std::chrono::duration<double>(clock::now() - start).count());
  if (op.error) std::rethrow_exception(op.error);
}

namespace {
constexpr int kArrivalTag = 7;
// How long a rank that hit the collective deadline gives MPI_Abort before it leaves by _Exit.
constexpr int kAbortGraceSeconds = 10;
}

uint64_t MpiCommunicator::running_collective() {
  std::lock_guard lock(mu_);
  return running_;
}

void MpiCommunicator::announce_arrival() {
  const uint64_t number = running_collective();
  // Sent eagerly (8 bytes) and never waited on: a peer that is gone must not hold this rank up.
  for (int peer = 0; peer < size_; ++peer) {
    if (peer == rank_) continue;
    MPI_Request request = MPI_REQUEST_NULL;
    auto* payload = new uint64_t(number);  // lives until the process ends; slow collectives are rare
    if (MPI_Isend(payload, 1, MPI_UINT64_T, peer, kArrivalTag, arrivals_, &request) == MPI_SUCCESS)
      MPI_Request_free(&request);
  }
}

std::string MpiCommunicator::who_is_missing() {
  const uint64_t number = running_collective();
  // Peers that waited as long as this rank announced themselves a three-quarter deadline ago;
  // a short grace lets a peer that arrived just before this rank's deadline be heard too.
  std::vector<uint64_t> reached(static_cast<size_t>(size_), 0);
  reached[static_cast<size_t>(rank_)] = number;
  const auto grace = std::chrono::steady_clock::now() + std::chrono::duration<double>(std::min(2.0, current_timeout() / 4));
  auto everyone_heard = [&] {
    return std::all_of(reached.begin(), reached.end(), [&](uint64_t n) { return n >= number; });
  };
  while (!everyone_heard() && std::chrono::steady_clock::now() < grace) {
    int flag = 0;
    MPI_Status status;
    if (MPI_Iprobe(MPI_ANY_SOURCE, kArrivalTag, arrivals_, &flag, &status) != MPI_SUCCESS) break;
    if (!flag) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    uint64_t n = 0;
    if (MPI_Recv(&n, 1, MPI_UINT64_T, status.MPI_SOURCE, kArrivalTag, arrivals_, MPI_STATUS_IGNORE) != MPI_SUCCESS) break;
    auto& seen = reached[static_cast<size_t>(status.MPI_SOURCE)];
    seen = std::max(seen, n);
  }
  std::string missing, behind;
  for (int r = 0; r < size_; ++r) {
    const uint64_t n = reached[static_cast<size_t>(r)];
    if (n >= number) continue;
    std::string& list = n == 0 ? missing : behind;
    const int world = world_ranks_[static_cast<size_t>(r)];
    const std::string node = world_node(world);
    list += detail::concat(list.empty() ? "" : ", ", r, " (world rank ", world, node.empty() ? "" : " on ", node, ")");
  }
  if (missing.empty() && behind.empty())
    return "every rank of the group reached this collective (a stalled transfer?)";
  std::string text;
  if (!missing.empty()) text = "group rank(s) " + missing + " did not arrive";
  if (!behind.empty())
    text += (text.empty() ? "" : "; ") + std::string("group rank(s) ") + behind + " are in an earlier collective";
  return text;
}

void MpiCommunicator::abort_on_timeout(const Op& op) {
  const std::string missing = size_ > 1 ? who_is_missing() : std::string("a group of one rank");
  if (wait_timeout_s_ > 0)
    write_stderr_line(detail::concat("tessera: rank ", world_rank_, " (world) waited ", wait_timeout_s_, " s for ",
                                     wait_reason_, " (", op.what, " on group \"", group_name_, "\" of ", size_,
                                     " ranks): ", missing));
  else
    write_stderr_line(detail::concat("tessera: rank ", world_rank_, " (world) timed out after ", timeout_s_, " s in ",
                                     op.what, " on group \"", group_name_, "\" of ", size_, " ranks: ", missing));
  // MPI_Abort reaches the other ranks through the launcher's daemons; on a host cut off from them
  // (a network partition) it may block for as long as the link is down. Whatever it does, this
  // rank is gone kAbortGraceSeconds after the message, with the deadline's exit code.
  std::thread([] {
    std::this_thread::sleep_for(std::chrono::seconds(kAbortGraceSeconds));
    std::_Exit(124);
  }).detach();
  MPI_Abort(MPI_COMM_WORLD, 124);
  std::_Exit(124);  // MPI_Abort should not return; make sure this rank never hangs if it does
}

void MpiCommunicator::set_wait_deadline(double seconds, const std::string& reason) {
  TESSERA_CHECK(seconds > 0, "a wait deadline must be positive, got ", seconds);
  wait_timeout_s_ = seconds;
  wait_reason_ = reason;
}

void MpiCommunicator::clear_wait_deadline() {
  wait_timeout_s_ = 0;
  wait_reason_.clear();
}

std::unique_ptr<CollectiveHandle> MpiCommunicator::all_reduce_async(void* buf, size_t count,
                                                                    DType dtype, ReduceOp op,
                                                                    StreamOrder) {
  std::string what = describe_collective("all_reduce", count, dtype, op);
  MPI_Datatype type = mpi_type(dtype, what);
  int n = mpi_count(count, what);
  auto queued = submit(what, [=, this] {
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf, n, type, mpi_op(op), comm_));
    if (op == ReduceOp::avg) divide_by(buf, count, dtype, size_);
  });
  return std::make_unique<Handle>(*this, std::move(queued));
}

void MpiCommunicator::all_reduce(void* buf, size_t count, DType dtype, ReduceOp op) {
  all_reduce_async(buf, count, dtype, op)->wait();
}

std::unique_ptr<CollectiveHandle> MpiCommunicator::all_gather_async(const void* send, void* recv,
                                                                    size_t send_count, DType dtype,
                                                                    StreamOrder) {
  std::string what = describe_collective("all_gather", send_count, dtype);
  MPI_Datatype type = mpi_copy_type(dtype, what);
  int n = mpi_count(send_count, what);
  mpi_count(send_count * static_cast<size_t>(size_), what);
  // Sending from this rank's own slot of recv is MPI's in-place all-gather.
  const char* own_slot = static_cast<const char*>(recv) + rank_ * send_count * dtype_size(dtype);
  const void* source = send == own_slot ? MPI_IN_PLACE : send;
  auto queued = submit(what, [=, this] { MPI_CHECK(MPI_Allgather(source, n, type, recv, n, type, comm_)); });
  return std::make_unique<Handle>(*this, std::move(queued));
}

void MpiCommunicator::all_gather(const void* send, void* recv, size_t send_count, DType dtype) {
  all_gather_async(send, recv, send_count, dtype)->wait();
}

std::unique_ptr<CollectiveHandle> MpiCommunicator::reduce_scatter_async(const void* send, void* recv,
                                                                        size_t recv_count, DType dtype,
                                                                        ReduceOp op, StreamOrder) {
  std::string what = describe_collective("reduce_scatter", recv_count, dtype, op);
  MPI_Datatype type = mpi_type(dtype, what);
  int n = mpi_count(recv_count, what);
  mpi_count(recv_count * static_cast<size_t>(size_), what);
  // In place (recv is this rank's block of send): MPI's in-place form takes its input from the
  // whole buffer and leaves the result in the first block, so the result moves to our block after.
  const size_t block_bytes = recv_count * dtype_size(dtype);
  char* whole = static_cast<char*>(const_cast<void*>(send));
  const bool in_place = recv == whole + rank_ * block_bytes;
  auto queued = submit(what, [=, this] {
    if (in_place) {
      MPI_CHECK(MPI_Reduce_scatter_block(MPI_IN_PLACE, whole, n, type, mpi_op(op), comm_));
      if (rank_ != 0) std::memmove(recv, whole, block_bytes);
    } else {
      MPI_CHECK(MPI_Reduce_scatter_block(send, recv, n, type, mpi_op(op), comm_));
    }
    if (op == ReduceOp::avg) divide_by(recv, recv_count, dtype, size_);
  });
  return std::make_unique<Handle>(*this, std::move(queued));
}

void MpiCommunicator::reduce_scatter(const void* send, void* recv, size_t recv_count,
                                     DType dtype, ReduceOp op) {
  reduce_scatter_async(send, recv, recv_count, dtype, op)->wait();
}

void MpiCommunicator::broadcast(void* buf, size_t count, DType dtype, int root) {
  std::string what = detail::concat("broadcast(count=", count, ", ", dtype_name(dtype),
                                    ", root=", root, ")");
  TESSERA_CHECK(root >= 0 && root < size_, what, " on group \"", group_name_, "\" of ", size_,
                " ranks: root out of range");
  MPI_Datatype type = mpi_copy_type(dtype, what);
  int n = mpi_count(count, what);
  wait_for(*submit(what, [=, this] { MPI_CHECK(MPI_Bcast(buf, n, type, root, comm_)); }));
}

void MpiCommunicator::barrier() {
  wait_for(*submit("barrier()", [this] { MPI_CHECK(MPI_Barrier(comm_)); }));
}

}  // namespace tessera::parallel
