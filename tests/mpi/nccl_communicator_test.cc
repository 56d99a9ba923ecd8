// The NCCL communicator against exact results, one GPU per rank: every collective, element type
// and reduction on the world, tp and dp groups of a grid; the in-place forms; async collectives in
// issue order and after the compute stream's work; host buffers through MPI. Inputs are small
// integers (rank r's element i of draw s is ((7i + 3r + s) mod 5) - 2), so sums are exact in every
// type; only the float averages (NCCL pre-multiplies by 1/n) get a tolerance.
// Every test skips where a node has fewer visible GPUs than ranks (and so here, without a GPU).
// With TESSERA_NCCL_TEST_SKIP_RANK=R (nccl_deadline.sh), NcclDeadline runs: rank R never issues
// an all-reduce, and the other ranks must end the job past the 4 s deadline, naming it.
#include <cuda_runtime.h>
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"
#include "core/tensor.h"
#include "kernels/cuda/runtime.h"
#include "parallel/compute_device.h"
#include "parallel/cuda/nccl_communicator.h"
#include "parallel/process_grid.h"

namespace tessera::parallel {
namespace {

constexpr double kTimeout = 120.0;
const size_t kCounts[] = {1, 7, 1037, 65539};
const DType kTypes[] = {DType::f32, DType::f64, DType::i32, DType::bf16};

// Why the tests cannot run ("" when they can), agreed by every rank so that all skip together.
const std::string& skip_reason() {
  static const std::string reason = [] {
    int gpus = 0;
    if (cudaGetDeviceCount(&gpus) != cudaSuccess) {
      (void)cudaGetLastError();
      gpus = 0;
    }
    const NodePlacement node = node_placement();
    int32_t cannot = gpus < node.local_ranks ? 1 : 0;
    MPI_Allreduce(MPI_IN_PLACE, &cannot, 1, MPI_INT32_T, MPI_MAX, MPI_COMM_WORLD);
    if (!cannot) return std::string();
    return detail::concat("needs one GPU per rank; host ", node.host, " runs ", node.local_ranks, " ranks and sees ",
                          gpus, " GPUs (or another node has too few)");
  }();
  return reason;
}

#define SKIP_WITHOUT_GPUS()                                            \
  do {                                                                 \
    if (!skip_reason().empty()) GTEST_SKIP() << skip_reason();         \
  } while (0)

Device gpu() {
  static const Device device = select_compute_device("cuda");
  return device;
}

// One grid for the suite (creating NCCL communicators takes a while): tp 2 when the world is even.
std::unique_ptr<ProcessGrid>& grid_slot() {
  static std::unique_ptr<ProcessGrid> g;
  return g;
}
ProcessGrid& grid() {
  std::unique_ptr<ProcessGrid>& g = grid_slot();
  if (!g) {
    int world = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    const int tp = world % 2 == 0 ? 2 : 1;
    g = std::make_unique<ProcessGrid>(tp, world / tp, kTimeout, gpu());
  }
  return *g;
}
// The grid's NCCL communicators must end before MPI does.
class GridEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { grid_slot().reset(); }
};
[[maybe_unused]] const auto* const kEnvironment = ::testing::AddGlobalTestEnvironment(new GridEnvironment);

double input(int rank, size_t i, int draw) {
  return static_cast<double>((7 * i + 3 * static_cast<size_t>(rank) + static_cast<size_t>(draw)) % 5) - 2;
}

std::vector<char> to_bytes(const std::vector<double>& values, DType dtype) {
  std::vector<char> out(values.size() * dtype_size(dtype));
  for (size_t i = 0; i < values.size(); ++i) {
    char* p = out.data() + i * dtype_size(dtype);
    const double v = values[i];
    switch (dtype) {
      case DType::f32: { const float x = static_cast<float>(v); std::memcpy(p, &x, sizeof x); break; }
      case DType::f64: std::memcpy(p, &v, sizeof v); break;
      case DType::i32: { const int32_t x = static_cast<int32_t>(v); std::memcpy(p, &x, sizeof x); break; }
      case DType::bf16: { const uint16_t x = float_to_bf16(static_cast<float>(v)); std::memcpy(p, &x, sizeof x); break; }
    }
  }
  return out;
}

std::vector<double> from_bytes(const std::vector<char>& bytes, DType dtype) {
  std::vector<double> out(bytes.size() / dtype_size(dtype));
  for (size_t i = 0; i < out.size(); ++i) {
    const char* p = bytes.data() + i * dtype_size(dtype);
    switch (dtype) {
      case DType::f32: { float x; std::memcpy(&x, p, sizeof x); out[i] = x; break; }
      case DType::f64: std::memcpy(&out[i], p, sizeof(double)); break;
      case DType::i32: { int32_t x; std::memcpy(&x, p, sizeof x); out[i] = x; break; }
      case DType::bf16: { uint16_t x; std::memcpy(&x, p, sizeof x); out[i] = bf16_to_float(x); break; }
    }
  }
  return out;
}

// A device buffer of `dtype` elements; uploads and downloads are stream-ordered on the compute
// stream (a download waits for everything queued before it, collectives included).
class DeviceArray {
 public:
  DeviceArray(DType dtype, size_t count)
      : dtype_(dtype), count_(count), ptr_(allocator_for(gpu()).allocate(count * dtype_size(dtype))) {}
  DeviceArray(DType dtype, const std::vector<double>& values) : DeviceArray(dtype, values.size()) { set(values); }
  ~DeviceArray() { allocator_for(gpu()).deallocate(ptr_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  void* data() const { return ptr_; }
  void* at(size_t element) const { return static_cast<char*>(ptr_) + element * dtype_size(dtype_); }
  void set(const std::vector<double>& values) const {
    const std::vector<char> bytes = to_bytes(values, dtype_);
    allocator_for(gpu()).copy(ptr_, gpu(), bytes.data(), Device::cpu, bytes.size());
  }
  std::vector<double> get() const {
    std::vector<char> bytes(count_ * dtype_size(dtype_));
    allocator_for(gpu()).copy(bytes.data(), Device::cpu, ptr_, gpu(), bytes.size());
    return from_bytes(bytes, dtype_);
  }

 private:
  DType dtype_;
  size_t count_;
  void* ptr_;
};

std::vector<double> inputs(int rank, size_t count, int draw) {
  std::vector<double> v(count);
  for (size_t i = 0; i < count; ++i) v[i] = input(rank, i, draw);
  return v;
}

// op over the inputs of ranks 0..n-1; avg truncates toward zero on i32, as ncclAvg does.
std::vector<double> reduced(int n, size_t count, int draw, ReduceOp op, DType dtype) {
  std::vector<double> out(count);
  for (size_t i = 0; i < count; ++i) {
    double acc = op == ReduceOp::max ? -INFINITY : 0.0;
    for (int r = 0; r < n; ++r) acc = op == ReduceOp::max ? std::max(acc, input(r, i, draw)) : acc + input(r, i, draw);
    if (op == ReduceOp::avg) acc = dtype == DType::i32 ? std::trunc(acc / n) : acc / n;
    out[i] = acc;
  }
  return out;
}

void expect_equal(const std::vector<double>& got, const std::vector<double>& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::abs(got[i] - want[i]) <= tol * (1 + std::abs(want[i]))) && bad++ == 0) first = i;
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << got.size() << " elements differ, first at " << first
                     << ": got " << got[first] << ", want " << want[first];
}

// Sums and maxima of small integers are exact; a float average is a sum of x * (1/n).
double tolerance(DType dtype, ReduceOp op) {
  if (op != ReduceOp::avg || dtype == DType::i32) return 0;
  return dtype == DType::bf16 ? 1.0 / 64 : dtype == DType::f32 ? 1e-6 : 1e-12;
}

std::vector<Communicator*> groups() { return {&grid().world(), &grid().tp(), &grid().dp()}; }

std::string label(const Communicator& comm, DType dtype, const std::string& what) {
  return detail::concat(what, " on ", comm.group_name(), " (", comm.size(), " ranks), ", dtype_name(dtype));
}

TEST(NcclCommunicator, GridGroupsAreNccl) {
  SKIP_WITHOUT_GPUS();
  for (Communicator* comm : groups()) EXPECT_NE(dynamic_cast<NcclCommunicator*>(comm), nullptr) << comm->group_name();
  EXPECT_EQ(grid().tp().rank(), grid().tp_rank());
  EXPECT_EQ(grid().dp().rank(), grid().dp_rank());
}

TEST(NcclCommunicator, AllReduceEveryTypeAndOp) {
  SKIP_WITHOUT_GPUS();
  int draw = 0;
  for (Communicator* comm : groups())
    for (DType dtype : kTypes)
      for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg, ReduceOp::max})
        for (size_t count : kCounts) {
          ++draw;
          DeviceArray buf(dtype, inputs(comm->rank(), count, draw));
          comm->all_reduce(buf.data(), count, dtype, op);
          expect_equal(buf.get(), reduced(comm->size(), count, draw, op, dtype), tolerance(dtype, op),
                       label(*comm, dtype, detail::concat("all_reduce ", reduce_op_name(op), " count ", count)));
        }
}

TEST(NcclCommunicator, AllGatherAndReduceScatterInAndOutOfPlace) {
  SKIP_WITHOUT_GPUS();
  int draw = 0;
  for (Communicator* comm : groups())
    for (DType dtype : kTypes)
      for (size_t count : kCounts) {
        const int n = comm->size(), rank = comm->rank();
        const size_t total = count * static_cast<size_t>(n);
        ++draw;
        std::vector<double> gathered;
        for (int r = 0; r < n; ++r) {
          const std::vector<double> in = inputs(r, count, draw);
          gathered.insert(gathered.end(), in.begin(), in.end());
        }
        DeviceArray send(dtype, inputs(rank, count, draw)), recv(dtype, total);
        comm->all_gather(send.data(), recv.data(), count, dtype);
        expect_equal(recv.get(), gathered, 0, label(*comm, dtype, detail::concat("all_gather count ", count)));
        // In place: this rank's block already sits in its slot of the gathered buffer.
        std::vector<double> slots(total, -7);
        std::copy_n(inputs(rank, count, draw).begin(), count, slots.begin() + rank * count);
        DeviceArray whole(dtype, slots);
        comm->all_gather(whole.at(rank * count), whole.data(), count, dtype);
        expect_equal(whole.get(), gathered, 0, label(*comm, dtype, detail::concat("in-place all_gather count ", count)));

        const std::vector<double> sums = reduced(n, total, draw, ReduceOp::sum, dtype);
        const std::vector<double> mine(sums.begin() + rank * count, sums.begin() + (rank + 1) * count);
        DeviceArray big(dtype, inputs(rank, total, draw)), block(dtype, count);
        comm->reduce_scatter(big.data(), block.data(), count, dtype, ReduceOp::sum);
        expect_equal(block.get(), mine, 0, label(*comm, dtype, detail::concat("reduce_scatter count ", count)));
        // In place: the result lands in this rank's block of the input.
        comm->reduce_scatter(big.data(), big.at(rank * count), count, dtype, ReduceOp::sum);
        const std::vector<double> after = big.get();
        expect_equal(std::vector<double>(after.begin() + rank * count, after.begin() + (rank + 1) * count), mine, 0,
                     label(*comm, dtype, detail::concat("in-place reduce_scatter count ", count)));
      }
}

TEST(NcclCommunicator, BroadcastFromEveryRoot) {
  SKIP_WITHOUT_GPUS();
  for (Communicator* comm : groups())
    for (int root = 0; root < comm->size(); ++root) {
      DeviceArray buf(DType::f32, inputs(comm->rank(), 1037, root));
      comm->broadcast(buf.data(), 1037, DType::f32, root);
      expect_equal(buf.get(), inputs(root, 1037, root), 0, label(*comm, DType::f32, "broadcast"));
    }
  grid().world().barrier();
}

// Async collectives read what the compute stream queued before them (the uploads), run in issue
// order with a blocking one issued behind them, and a dropped handle still completes.
TEST(NcclCommunicator, AsyncCollectivesKeepIssueOrder) {
  SKIP_WITHOUT_GPUS();
  Communicator& dp = grid().dp();
  const ReduceOp ops[] = {ReduceOp::sum, ReduceOp::max, ReduceOp::avg, ReduceOp::sum};
  std::vector<std::unique_ptr<DeviceArray>> bufs;
  std::vector<std::unique_ptr<CollectiveHandle>> handles;
  for (int i = 0; i < 4; ++i) {
    bufs.push_back(std::make_unique<DeviceArray>(DType::f32, inputs(dp.rank(), kCounts[i], 100 + i)));
    handles.push_back(dp.all_reduce_async(bufs[i]->data(), kCounts[i], DType::f32, ops[i]));
  }
  const size_t n = 513, total = n * static_cast<size_t>(dp.size());
  DeviceArray gsend(DType::i32, inputs(dp.rank(), n, 200)), grecv(DType::i32, total);
  auto gather = dp.all_gather_async(gsend.data(), grecv.data(), n, DType::i32);
  DeviceArray big(DType::f64, inputs(dp.rank(), total, 201)), part(DType::f64, n);
  auto scatter = dp.reduce_scatter_async(big.data(), part.data(), n, DType::f64, ReduceOp::sum);
  DeviceArray blocking(DType::f32, inputs(dp.rank(), n, 202));
  dp.all_reduce(blocking.data(), n, DType::f32, ReduceOp::sum);
  expect_equal(blocking.get(), reduced(dp.size(), n, 202, ReduceOp::sum, DType::f32), 0, "blocking behind async");
  handles.back().reset();  // dropped without wait: the barrier still waits for it
  dp.barrier();
  for (size_t i = handles.size(); i-- > 0;) {
    if (handles[i]) handles[i]->wait();
    expect_equal(bufs[i]->get(), reduced(dp.size(), kCounts[i], 100 + static_cast<int>(i), ops[i], DType::f32),
                 tolerance(DType::f32, ops[i]), detail::concat("async all_reduce ", i));
  }
  gather->wait();
  std::vector<double> want;
  for (int r = 0; r < dp.size(); ++r) {
    const std::vector<double> in = inputs(r, n, 200);
    want.insert(want.end(), in.begin(), in.end());
  }
  expect_equal(grecv.get(), want, 0, "async all_gather");
  scatter->wait();
  const std::vector<double> sums = reduced(dp.size(), total, 201, ReduceOp::sum, DType::f64);
  expect_equal(part.get(), std::vector<double>(sums.begin() + dp.rank() * n, sums.begin() + (dp.rank() + 1) * n), 0,
               "async reduce_scatter");
}

// StreamOrder: the collective waits for a given event, on a given stream.
TEST(NcclCommunicator, StreamOrderIsHonoured) {
  SKIP_WITHOUT_GPUS();
  Communicator& tp = grid().tp();
  cudaStream_t stream = nullptr;
  cudaEvent_t ready = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), cudaSuccess);
  DeviceArray buf(DType::f32, inputs(tp.rank(), 65539, 300));
  ASSERT_EQ(cudaEventRecord(ready, kernels::cuda::stream()), cudaSuccess);
  tp.all_reduce_async(buf.data(), 65539, DType::f32, ReduceOp::sum, StreamOrder{stream, ready})->wait();
  expect_equal(buf.get(), reduced(tp.size(), 65539, 300, ReduceOp::sum, DType::f32), 0, "StreamOrder{stream, after}");
  EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  EXPECT_EQ(cudaEventDestroy(ready), cudaSuccess);
  EXPECT_EQ(cudaStreamDestroy(stream), cudaSuccess);
}

// The trainer reduces small host arrays over the same groups: they travel over MPI.
TEST(NcclCommunicator, HostBuffersGoThroughMpi) {
  SKIP_WITHOUT_GPUS();
  for (Communicator* comm : groups()) {
    std::vector<double> totals = inputs(comm->rank(), 3, 400);
    comm->all_reduce(totals.data(), totals.size(), DType::f64, ReduceOp::sum);
    expect_equal(totals, reduced(comm->size(), 3, 400, ReduceOp::sum, DType::f64), 0, comm->group_name() + " host");
    std::vector<int32_t> mine(5, comm->rank()), all(5 * static_cast<size_t>(comm->size()));
    comm->all_gather(mine.data(), all.data(), mine.size(), DType::i32);
    for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], static_cast<int32_t>(i / 5)) << comm->group_name();
  }
}

TEST(NcclCommunicator, MixedHostAndDeviceBuffersAreRejected) {
  SKIP_WITHOUT_GPUS();
  Communicator& world = grid().world();
  std::vector<float> host(4);
  DeviceArray recv(DType::f32, 4 * static_cast<size_t>(world.size()));
  try {
    world.all_gather(host.data(), recv.data(), 4, DType::f32);
    FAIL() << "a host send buffer with a device receive buffer should throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("all_gather(count=4, f32) on group \"world\""), std::string::npos) << e.what();
  }
}

TEST(NcclDeadline, SkippedRankEndsTheJob) {
  const char* skip = std::getenv("TESSERA_NCCL_TEST_SKIP_RANK");
  if (skip == nullptr) GTEST_SKIP() << "run by nccl_deadline.sh, with TESSERA_NCCL_TEST_SKIP_RANK set";
  SKIP_WITHOUT_GPUS();
  constexpr double kDeadline = 4.0;
  int world = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  ProcessGrid short_grid(1, world, kDeadline, gpu());
  if (short_grid.world_rank() == std::atoi(skip)) {
    std::this_thread::sleep_for(std::chrono::duration<double>(5 * kDeadline));  // the others end the job first
  } else {
    DeviceArray buf(DType::f32, std::vector<double>(4096, 1.0));
    short_grid.world().all_reduce(buf.data(), 4096, DType::f32, ReduceOp::sum);
    buf.get();  // waits on the GPU; the watchdog ends the job past the deadline
  }
  FAIL() << "the job should have ended past the deadline";
}

}  // namespace
}  // namespace tessera::parallel
