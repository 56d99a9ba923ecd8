// Collectives checked against values computed locally: every rank can regenerate every other
// rank's random input (seeded by a shared seed and the rank), so each rank knows the exact answer.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "test_seed.h"
#include "core/error.h"
#include "parallel/mpi_communicator.h"
#include "parallel/process_grid.h"
#include "parallel/self_communicator.h"

namespace tessera::parallel {
namespace {

constexpr double kTimeout = 120.0;
const size_t kCounts[] = {1, 7, 1037, 65539};

std::unique_ptr<MpiCommunicator> make_world() {
  return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, "world", kTimeout);
}

// A new seed per call within a test, from the test's replayable seed (test_seed.h), taken from
// rank 0 and shared so every rank draws the same inputs.
uint32_t shared_seed(Communicator& comm) {
  static uint32_t calls = 0;
  int32_t seed = static_cast<int32_t>((static_cast<uint32_t>(::tessera::testing::test_seed()) + calls++) & 0x7fffffff);
  comm.broadcast(&seed, 1, DType::i32, 0);
  return static_cast<uint32_t>(seed);
}

// The input of `rank`: uniform in [-1, 1) for floats, in [-1000, 1000] for integers.
template <typename T>
std::vector<T> rank_input(uint32_t seed, int rank, size_t count) {
  std::mt19937_64 gen(seed * 1000003ull + static_cast<uint64_t>(rank));
  std::vector<T> v(count);
  if constexpr (std::is_floating_point_v<T>) {
    std::uniform_real_distribution<T> dist(-1, 1);
    for (auto& x : v) x = dist(gen);
  } else {
    std::uniform_int_distribution<T> dist(-1000, 1000);
    for (auto& x : v) x = dist(gen);
  }
  return v;
}

// op over all ranks' inputs, element by element, computed in double (exact for i32).
template <typename T>
std::vector<T> reference(uint32_t seed, int ranks, size_t count, ReduceOp op) {
  std::vector<double> acc(count, op == ReduceOp::max ? -INFINITY : 0.0);
  for (int r = 0; r < ranks; ++r) {
    auto in = rank_input<T>(seed, r, count);
    for (size_t i = 0; i < count; ++i)
      acc[i] = op == ReduceOp::max ? std::max(acc[i], double(in[i])) : acc[i] + double(in[i]);
  }
  std::vector<T> out(count);
  for (size_t i = 0; i < count; ++i) {
    if (op != ReduceOp::avg) out[i] = static_cast<T>(acc[i]);
    else if constexpr (std::is_integral_v<T>) out[i] = static_cast<T>(int64_t(acc[i]) / ranks);
    else out[i] = static_cast<T>(acc[i] / ranks);
  }
  return out;
}

// atol + rtol*|want|, scaled by the element type (reductions may sum in any order).
template <typename T>
void expect_close(const std::vector<T>& got, const std::vector<T>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  const double tol = std::is_same_v<T, float> ? 1e-5 : std::is_same_v<T, double> ? 1e-12 : 0.0;
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::abs(double(got[i]) - double(want[i])) > tol * (1 + std::abs(double(want[i])))) {
      if (bad++ == 0) first = i;
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << got.size() << " elements differ, first at "
                     << first << ": got " << got[first] << ", want " << want[first];
}

template <typename T>
class CollectiveTest : public ::testing::Test {
 protected:
  void SetUp() override { comm_ = make_world(); }
  std::unique_ptr<MpiCommunicator> comm_;
};
using ElementTypes = ::testing::Types<float, double, int32_t>;
TYPED_TEST_SUITE(CollectiveTest, ElementTypes);

TYPED_TEST(CollectiveTest, AllReduceSumAvgMax) {
  using T = TypeParam;
  auto& comm = *this->comm_;
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg, ReduceOp::max}) {
    for (size_t count : kCounts) {
      uint32_t seed = shared_seed(comm);
      auto buf = rank_input<T>(seed, comm.rank(), count);
      comm.all_reduce(std::span<T>(buf), op);
      expect_close(buf, reference<T>(seed, comm.size(), count, op),
                   "all_reduce " + std::string(reduce_op_name(op)) + " count " +
                       std::to_string(count) + " seed " + std::to_string(seed));
    }
  }
}

// Several async all-reduces in flight, then blocking collectives behind them: the results must
// be right whatever order the handles are waited in, and a dropped handle still completes.
TYPED_TEST(CollectiveTest, AsyncAllReducesKeepIssueOrder) {
  using T = TypeParam;
  auto& comm = *this->comm_;
  const ReduceOp ops[] = {ReduceOp::sum, ReduceOp::max, ReduceOp::avg, ReduceOp::sum};
  uint32_t seed = shared_seed(comm);
  std::vector<std::vector<T>> bufs;
  std::vector<std::unique_ptr<CollectiveHandle>> handles;
  for (size_t i = 0; i < std::size(ops); ++i) {
    bufs.push_back(rank_input<T>(seed + uint32_t(i), comm.rank(), kCounts[i]));
    handles.push_back(comm.all_reduce_async(std::span<T>(bufs[i]), ops[i]));
  }
  auto blocking = rank_input<T>(seed + 100, comm.rank(), 513);
  comm.all_reduce(std::span<T>(blocking), ReduceOp::sum);
  expect_close(blocking, reference<T>(seed + 100, comm.size(), 513, ReduceOp::sum), "blocking");
  handles.back().reset();  // dropped without wait: the barrier below still orders after it
  comm.barrier();
  for (size_t i = handles.size(); i-- > 0;) {
    if (handles[i]) handles[i]->wait();
    expect_close(bufs[i], reference<T>(seed + uint32_t(i), comm.size(), kCounts[i], ops[i]),
                 "async " + std::to_string(i) + " seed " + std::to_string(seed));
  }
}

TYPED_TEST(CollectiveTest, AllGatherIsRankMajor) {
  using T = TypeParam;
  auto& comm = *this->comm_;
  for (size_t count : kCounts) {
    uint32_t seed = shared_seed(comm);
    auto send = rank_input<T>(seed, comm.rank(), count);
    std::vector<T> recv(count * comm.size()), want;
    comm.all_gather(std::span<const T>(send), std::span<T>(recv));
    for (int r = 0; r < comm.size(); ++r) {
      auto in = rank_input<T>(seed, r, count);
      want.insert(want.end(), in.begin(), in.end());
    }
    expect_close(recv, want, "all_gather count " + std::to_string(count));
    // In place: this rank's block already sits in its slot of recv.
    std::vector<T> inplace(count * comm.size());
    std::copy(send.begin(), send.end(), inplace.begin() + comm.rank() * count);
    comm.all_gather(inplace.data() + comm.rank() * count, inplace.data(), count, dtype_of<T>());
    expect_close(inplace, want, "in-place all_gather count " + std::to_string(count));
  }
}

TYPED_TEST(CollectiveTest, ReduceScatterReducesOwnBlock) {
  using T = TypeParam;
  auto& comm = *this->comm_;
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg, ReduceOp::max}) {
    for (size_t count : kCounts) {
      uint32_t seed = shared_seed(comm);
      const size_t total = count * comm.size();
      auto send = rank_input<T>(seed, comm.rank(), total);
      std::vector<T> recv(count);
      comm.reduce_scatter(std::span<const T>(send), std::span<T>(recv), op);
      auto full = reference<T>(seed, comm.size(), total, op);
      std::vector<T> want(full.begin() + comm.rank() * count,
                          full.begin() + (comm.rank() + 1) * count);
      expect_close(recv, want, "reduce_scatter " + std::string(reduce_op_name(op)) + " count " +
                                   std::to_string(count));
    }
  }
}

TYPED_TEST(CollectiveTest, BroadcastFromEveryRoot) {
  using T = TypeParam;
  auto& comm = *this->comm_;
  for (int root = 0; root < comm.size(); ++root) {
    uint32_t seed = shared_seed(comm);
    auto buf = rank_input<T>(seed, comm.rank(), 1037);
    comm.broadcast(std::span<T>(buf), root);
    expect_close(buf, rank_input<T>(seed, root, 1037), "broadcast root " + std::to_string(root));
  }
  comm.barrier();
}

// bf16 travels as raw 16-bit words in all_gather and broadcast; reductions reject it.
TEST(MpiCommunicator, Bf16MovesButDoesNotReduce) {
  auto comm = make_world();
  uint32_t seed = shared_seed(*comm);
  auto words = [&](int rank) {
    std::vector<uint16_t> v;
    for (int32_t x : rank_input<int32_t>(seed, rank, 33)) v.push_back(uint16_t(x + 1000));
    return v;
  };
  std::vector<uint16_t> gathered(33 * comm->size()), want;
  comm->all_gather(words(comm->rank()).data(), gathered.data(), 33, DType::bf16);
  for (int r = 0; r < comm->size(); ++r) {
    auto w = words(r);
    want.insert(want.end(), w.begin(), w.end());
  }
  EXPECT_EQ(gathered, want);
  auto buf = words(comm->rank());
  comm->broadcast(buf.data(), buf.size(), DType::bf16, comm->size() - 1);
  EXPECT_EQ(buf, words(comm->size() - 1));
  try {
    comm->all_reduce(buf.data(), buf.size(), DType::bf16, ReduceOp::sum);
    FAIL() << "bf16 all-reduce over MPI should throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bf16"), std::string::npos) << e.what();
  }
}

TEST(SelfCommunicator, IdentityAndCopies) {
  SelfCommunicator comm("tp");
  EXPECT_EQ(comm.rank(), 0);
  EXPECT_EQ(comm.size(), 1);
  EXPECT_EQ(comm.group_name(), "tp");
  uint32_t seed = static_cast<uint32_t>(::tessera::testing::test_seed());
  auto in = rank_input<float>(seed, 0, 1037);
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg, ReduceOp::max}) {
    auto buf = in;
    comm.all_reduce(std::span<float>(buf), op);
    EXPECT_EQ(buf, in);
    comm.all_reduce_async(std::span<float>(buf), op)->wait();
    EXPECT_EQ(buf, in);
  }
  std::vector<float> out(in.size());
  comm.all_gather(std::span<const float>(in), std::span<float>(out));
  EXPECT_EQ(out, in);
  std::fill(out.begin(), out.end(), 0.f);
  comm.reduce_scatter(std::span<const float>(in), std::span<float>(out), ReduceOp::sum);
  EXPECT_EQ(out, in);
  comm.broadcast(std::span<float>(out), 0);
  EXPECT_EQ(out, in);
  EXPECT_THROW(comm.broadcast(std::span<float>(out), 1), Error);
}

// Every (tp, dp) with tp * dp = world size.
std::vector<std::pair<int, int>> layouts(int world) {
  std::vector<std::pair<int, int>> out;
  for (int tp = 1; tp <= world; ++tp)
    if (world % tp == 0) out.emplace_back(tp, world / tp);
  return out;
}

TEST(ProcessGrid, GroupsFollowTensorRankFastest) {
  int world_rank = 0, world_size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  for (auto [tp, dp] : layouts(world_size)) {
    SCOPED_TRACE("tp " + std::to_string(tp) + " dp " + std::to_string(dp));
    ProcessGrid grid(tp, dp, kTimeout);
    EXPECT_EQ(grid.world_rank(), world_rank);
    EXPECT_EQ(grid.world_size(), world_size);
    EXPECT_EQ(grid.tp_size(), tp);
    EXPECT_EQ(grid.dp_size(), dp);
    EXPECT_EQ(grid.tp_rank(), world_rank % tp);
    EXPECT_EQ(grid.dp_rank(), world_rank / tp);
    EXPECT_EQ(grid.tp().size(), tp);
    EXPECT_EQ(grid.tp().rank(), grid.tp_rank());
    EXPECT_EQ(grid.dp().size(), dp);
    EXPECT_EQ(grid.dp().rank(), grid.dp_rank());
    EXPECT_EQ(grid.world().rank(), world_rank);
    EXPECT_EQ(grid.tp().group_name(), "tp");
    EXPECT_EQ(grid.dp().group_name(), "dp");

    // Each rank contributes its own bit: the sum names exactly the global ranks of the group.
    int32_t tp_members = 1 << world_rank, dp_members = 1 << world_rank;
    grid.tp().all_reduce(&tp_members, 1, DType::i32, ReduceOp::sum);
    grid.dp().all_reduce(&dp_members, 1, DType::i32, ReduceOp::sum);
    int32_t want_tp = 0, want_dp = 0;
    for (int t = 0; t < tp; ++t) want_tp |= 1 << (t + tp * grid.dp_rank());
    for (int d = 0; d < dp; ++d) want_dp |= 1 << (grid.tp_rank() + tp * d);
    EXPECT_EQ(tp_members, want_tp);
    EXPECT_EQ(dp_members, want_dp);

    // And random data sums over the same ranks.
    uint32_t seed = shared_seed(grid.world());
    auto buf = rank_input<double>(seed, world_rank, 1037);
    grid.tp().all_reduce(std::span<double>(buf), ReduceOp::sum);
    std::vector<double> want(buf.size(), 0.0);
    for (int t = 0; t < tp; ++t) {
      auto in = rank_input<double>(seed, t + tp * grid.dp_rank(), buf.size());
      for (size_t i = 0; i < want.size(); ++i) want[i] += in[i];
    }
    expect_close(buf, want, "tp-group all_reduce");
  }
}

TEST(ProcessGrid, RejectsLayoutThatDoesNotFillTheWorld) {
  int world_size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  for (auto [tp, dp] : {std::pair{world_size + 1, 1}, std::pair{2, world_size}}) {
    try {
      ProcessGrid grid(tp, dp, kTimeout);
      FAIL() << "tp " << tp << " dp " << dp << " should not fit a world of " << world_size;
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find("--tensor-parallel"), std::string::npos) << msg;
      EXPECT_NE(msg.find("--data-parallel"), std::string::npos) << msg;
      EXPECT_NE(msg.find(std::to_string(world_size) + " ranks"), std::string::npos) << msg;
    }
  }
}

TEST(ProcessGrid, SingleNeedsNoMpi) {
  ProcessGrid grid = ProcessGrid::single();
  EXPECT_EQ(grid.world_size(), 1);
  EXPECT_EQ(grid.tp_size(), 1);
  EXPECT_EQ(grid.dp_size(), 1);
  EXPECT_EQ(grid.tp().size(), 1);
  std::vector<float> buf = rank_input<float>(static_cast<uint32_t>(::tessera::testing::test_seed()), 0, 64), copy = buf;
  grid.dp().all_reduce(std::span<float>(buf), ReduceOp::avg);
  EXPECT_EQ(buf, copy);
}

// Spins the CPU without any MPI call for `seconds`, as backward compute would.
double busy_compute(double seconds) {
  auto start = std::chrono::steady_clock::now();
  volatile double acc = 0;
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds)
    for (int i = 0; i < 10000; ++i) acc = acc * 0.999 + i;
  return acc;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// A 64 MB all-reduce started before a long compute must be (nearly) done when the compute ends:
// the progress thread moves it while the caller never enters MPI. The compute lasts 16 times the
// all-reduce alone (at least 1 s), so even with 4 ranks spinning on 2 shared cores the progress
// threads get their time slices; the wait may still include a scheduler wake-up on a loaded
// machine, hence 50 ms of absolute slack on top of half the all-reduce.
TEST(MpiCommunicator, AsyncAllReduceProgressesDuringCompute) {
  auto comm = make_world();
  const size_t count = 16 << 20;  // 64 MB of f32
  uint32_t seed = shared_seed(*comm);
  auto buf = rank_input<float>(seed, comm->rank(), count);

  double alone = INFINITY;
  for (int rep = 0; rep < 2; ++rep) {
    comm->barrier();
    auto t = std::chrono::steady_clock::now();
    comm->all_reduce(std::span<float>(buf), ReduceOp::max);
    alone = std::min(alone, seconds_since(t));
  }
  // Every rank computes equally long, so no rank waits on a slow peer.
  comm->all_reduce(&alone, 1, DType::f64, ReduceOp::max);

  buf = rank_input<float>(seed, comm->rank(), count);
  const double compute = std::max(16 * alone, 1.0);
  comm->barrier();
  auto handle = comm->all_reduce_async(std::span<float>(buf), ReduceOp::sum);
  busy_compute(compute);
  auto t = std::chrono::steady_clock::now();
  handle->wait();
  const double waited = seconds_since(t);

  if (comm->rank() == 0)
    std::printf("[overlap] %d ranks, 64 MB all-reduce alone %.3f s; after %.3f s of compute, "
                "wait() took %.4f s\n", comm->size(), alone, compute, waited);
  EXPECT_LT(waited, 0.5 * alone + 0.05) << "the all-reduce did not progress while the caller computed";
  auto want = reference<float>(seed, comm->size(), 4096, ReduceOp::sum);
  expect_close(std::vector<float>(buf.begin(), buf.begin() + 4096), want, "overlapped all_reduce");
}

}  // namespace
}  // namespace tessera::parallel
