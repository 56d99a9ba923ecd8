// Resharding: a checkpoint saved in one (tp, dp) layout loads into every other layout, including
// a single process, with a vocabulary (29) that tp does not divide, so the padded embedding has
// 29, 30 or 32 rows depending on the layout. Every element of the state is set to a function of
// its parameter and *global* coordinates before saving, so each rank can check every element of
// its own slices - values, both Adam moments, zeros in padded rows - exactly, without a reference
// run. A failure while loading on one rank makes every rank throw.
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "checkpoint/checkpoint_saver.h"
#include "checkpoint/manifest.h"
#include "checkpoint/verify.h"
#include "data/synthetic_task.h"
#include "kernels/ops.h"
#include "parallel/process_grid.h"
#include "train/trainer.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int world_size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

train::TrainOptions options(int tp, int dp) {
  train::TrainOptions o;
  o.model.vocab_size = 29;  // padded to 30 at tp=2, 32 at tp=4
  o.model.d_model = 16;
  o.model.d_ff = 32;
  o.model.heads = 4;
  o.model.encoder_layers = 1;
  o.model.decoder_layers = 1;
  o.seed = 99;
  o.tensor_parallel = tp;
  o.data_parallel = dp;
  return o;
}

// The value element `global` of parameter `id` gets; `which` picks value, first or second moment.
double state_value(size_t id, int64_t global, int which, double salt) {
  const double f = std::sin(0.37 * static_cast<double>(global) + 1.3 * static_cast<double>(id) + salt);
  return which == 0 ? f : which == 1 ? f / 8 : f * f / 64;
}

// Calls visit(id, local element, global flat index or -1 for a padded row) for every element.
void for_each_element(const model::ParameterStore& store, const std::function<void(size_t, int64_t, int64_t)>& visit) {
  for (size_t id = 0; id < store.size(); ++id) {
    const model::ParamInfo& p = store.info(static_cast<int>(id));
    std::vector<int64_t> idx(p.local_shape.size());
    for (int64_t i = 0; i < p.numel(); ++i) {
      int64_t rest = i;
      for (size_t d = idx.size(); d-- > 0;) {
        idx[d] = rest % p.local_shape[d];
        rest /= p.local_shape[d];
      }
      if (!p.partition.is_replicated()) idx[p.partition.dim] += p.partition.index * p.local_shape[p.partition.dim];
      int64_t flat = 0;
      for (size_t d = 0; d < idx.size(); ++d) flat = flat * p.global_shape[d] + idx[d];
      const bool padded = p.valid_rows >= 0 && !idx.empty() && idx[0] >= p.valid_rows;
      visit(id, p.offset + i, padded ? -1 : flat);
    }
  }
}

Tensor* state_tensor(train::Trainer& t, int which) {
  return which == 1 ? &t.optimizer().first_moment() : &t.optimizer().second_moment();
}

// Sets every element of values and moments; padded rows get `padding` (0 is what a model holds).
void fill(train::Trainer& t, double salt, double padding) {
  for (int which = 0; which < 3; ++which) {
    Tensor buf = which == 0 ? t.store().values() : *state_tensor(t, which);
    float* data = buf.data<float>();
    for_each_element(t.store(), [&](size_t id, int64_t local, int64_t global) {
      data[local] = static_cast<float>(global < 0 ? padding : state_value(id, global, which, salt));
    });
  }
  t.optimizer().set_step(static_cast<int64_t>(salt * 10));
}

// Checks every element this rank holds against fill(salt, padding 0); reports the first few.
void expect_state(train::Trainer& t, double salt) {
  EXPECT_EQ(t.optimizer().step(), static_cast<int64_t>(salt * 10));
  for (int which = 0; which < 3; ++which) {
    const Tensor buf = which == 0 ? t.store().values() : *state_tensor(t, which);
    const float* data = buf.data<float>();
    int bad = 0;
    for_each_element(t.store(), [&](size_t id, int64_t local, int64_t global) {
      const float want = global < 0 ? 0.0f : static_cast<float>(state_value(id, global, which, salt));
      if (data[local] != want && bad++ < 3)
        ADD_FAILURE() << t.store().info(static_cast<int>(id)).name << " (" << (which == 0 ? "value" : which == 1 ? "m" : "v")
                      << ") global element " << global << ": " << data[local] << " want " << want;
    });
  }
}

// One directory name shared by all ranks (rank 0 picks it), removed at the end.
class SharedTempDir {
 public:
  SharedTempDir() {
    long id = static_cast<long>(::getpid());
    MPI_Bcast(&id, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    path_ = fs::temp_directory_path() / ("tessera-ckpt-mpi-" + std::to_string(id));
    if (world_rank() == 0) fs::create_directories(path_);
    MPI_Barrier(MPI_COMM_WORLD);
  }
  ~SharedTempDir() {
    MPI_Barrier(MPI_COMM_WORLD);
    if (world_rank() == 0) fs::remove_all(path_);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

struct Layout {
  int tp, dp;
  bool single;  // a lone process (world rank 0) while the others wait
  std::string name() const {
    return (single ? "single " : "") + std::string("tp=") + std::to_string(tp) + " dp=" + std::to_string(dp);
  }
};

std::vector<Layout> layouts() {
  std::vector<Layout> out{{1, 1, true}};
  for (int tp = 1; tp <= world_size(); ++tp)
    if (world_size() % tp == 0 && 4 % tp == 0) out.push_back({tp, world_size() / tp, false});
  return out;
}

// Runs `body` with a trainer in `layout` on the ranks that take part; all ranks meet afterwards.
void in_layout(const Layout& layout, const std::function<void(train::Trainer&, parallel::ProcessGrid&)>& body) {
  if (layout.single) {
    if (world_rank() == 0) {
      parallel::ProcessGrid grid = parallel::ProcessGrid::single();
      train::Trainer t(options(1, 1), grid);
      body(t, grid);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    return;
  }
  parallel::ProcessGrid grid(layout.tp, layout.dp, 60.0);
  train::Trainer t(options(layout.tp, layout.dp), grid);
  body(t, grid);
}

TEST(CheckpointResharding, EveryLayoutLoadsEveryOtherLayoutsCheckpoint) {
  kernels::set_num_threads(1);
  SharedTempDir tmp;
  for (const Layout& from : layouts()) {
    const fs::path root = tmp.path() / ("from-tp" + std::to_string(from.tp) + "-dp" + std::to_string(from.dp) +
                                        (from.single ? "-single" : ""));
    in_layout(from, [&](train::Trainer& t, parallel::ProcessGrid& grid) {
      fill(t, 0.5, 0.0);
      checkpoint::save_checkpoint(root, t.store(), &t.optimizer(), grid, {5, "config of " + from.name(), "{}"});
    });
    for (const Layout& to : layouts()) {
      SCOPED_TRACE("saved in " + from.name() + ", loaded in " + to.name());
      in_layout(to, [&](train::Trainer& t, parallel::ProcessGrid& grid) {
        fill(t, 2.0, 7.0);  // other values everywhere, padded rows included
        const checkpoint::CheckpointInfo info = checkpoint::load_checkpoint(root, t.store(), &t.optimizer(), grid.world());
        EXPECT_EQ(info.step, 5);
        EXPECT_EQ(info.config, "config of " + from.name());
        EXPECT_EQ(info.tensor_parallel, from.tp);
        expect_state(t, 0.5);
      });
    }
  }
}

// The bytes of two tensors (any device) are the same.
bool same_bytes(const Tensor& a, const Tensor& b) {
  const Tensor ha = a.to(Device::cpu), hb = b.to(Device::cpu);
  return ha.numel() == hb.numel() && ha.dtype() == hb.dtype() &&
         std::memcmp(ha.raw(), hb.raw(), static_cast<size_t>(ha.numel()) * dtype_size(ha.dtype())) == 0;
}

std::vector<model::TokenPair> batch_for_step(int64_t step) {
  data::SyntheticTask task;
  task.vocab_size = 29;
  task.min_len = 3;
  task.max_len = 9;
  task.seed = 5;
  return task.pairs(data::kTrainSplit, step * 8, 8);
}

// ZeRO-1 checkpoints are layout-free: a sharded optimizer's checkpoint (moments gathered from the
// data-parallel group) loads into a replicated one, whose checkpoint loads back into a sharded
// one, every byte of the parameters and moments intact; and the restored sharded run takes the
// next step exactly as the original.
TEST(CheckpointZero, AShardedCheckpointRestoresIntoAReplicatedOptimizerAndBackBitExact) {
  kernels::set_num_threads(1);
  SharedTempDir tmp;
  for (const Layout& layout : layouts()) {
    if (layout.single || layout.dp < 2) continue;
    SCOPED_TRACE(layout.name());
    parallel::ProcessGrid grid(layout.tp, layout.dp, 60.0);
    train::TrainOptions sharded_options = options(layout.tp, layout.dp);
    sharded_options.batch_sentences = 8;
    sharded_options.bucket_mb = 0.002;  // several buckets, most with a tail
    sharded_options.shard_optimizer = true;
    train::TrainOptions replicated_options = sharded_options;
    replicated_options.shard_optimizer = false;

    train::Trainer original(sharded_options, grid);
    ASSERT_TRUE(original.optimizer().sharded());
    for (int64_t step = 0; step < 3; ++step) original.train_step(batch_for_step(step));
    const fs::path dir_a = tmp.path() / ("zero-" + layout.name() + "-a");
    checkpoint::save_checkpoint(dir_a, original.store(), &original.optimizer(), grid, {3, "", "{}"});
    const train::Adam::Moments want = original.optimizer().store_layout_moments();

    train::Trainer replicated(replicated_options, grid);
    ASSERT_FALSE(replicated.optimizer().sharded());
    checkpoint::load_checkpoint(dir_a, replicated.store(), &replicated.optimizer(), grid.world());
    EXPECT_TRUE(same_bytes(replicated.store().values(), original.store().values()));
    EXPECT_TRUE(same_bytes(replicated.optimizer().first_moment(), want.m));
    EXPECT_TRUE(same_bytes(replicated.optimizer().second_moment(), want.v));
    EXPECT_EQ(replicated.optimizer().step(), 3);

    const fs::path dir_b = tmp.path() / ("zero-" + layout.name() + "-b");
    checkpoint::save_checkpoint(dir_b, replicated.store(), &replicated.optimizer(), grid, {3, "", "{}"});
    train::Trainer restored(sharded_options, grid);
    checkpoint::load_checkpoint(dir_b, restored.store(), &restored.optimizer(), grid.world());
    EXPECT_TRUE(same_bytes(restored.store().values(), original.store().values()));
    EXPECT_TRUE(same_bytes(restored.optimizer().first_moment(), original.optimizer().first_moment()));
    EXPECT_TRUE(same_bytes(restored.optimizer().second_moment(), original.optimizer().second_moment()));

    const double want_loss = original.train_step(batch_for_step(3)).loss;
    EXPECT_EQ(restored.train_step(batch_for_step(3)).loss, want_loss);
    EXPECT_TRUE(same_bytes(restored.store().values(), original.store().values()));
  }
}

TEST(CheckpointResharding, AFailureOnOneRankFailsEveryRank) {
  if (world_size() % 2 != 0) GTEST_SKIP() << "needs an even number of ranks for a tp=2 layout; registered at np 2 and 4";
  kernels::set_num_threads(1);
  SharedTempDir tmp;
  const Layout layout{2, world_size() / 2, false};
  in_layout(layout, [&](train::Trainer& t, parallel::ProcessGrid& grid) {
    fill(t, 0.5, 0.0);
    const fs::path dir = checkpoint::save_checkpoint(tmp.path(), t.store(), &t.optimizer(), grid, {1, "", ""});
    // Only tensor-parallel rank 1 reads shard 1 when the layout is unchanged.
    const fs::path shard = dir / "model-tp1-of-2.safetensors";
    grid.world().barrier();
    if (grid.world().rank() == 0) fs::resize_file(shard, fs::file_size(shard) - 8);
    grid.world().barrier();
    std::string message;
    try {
      checkpoint::load_checkpoint(tmp.path(), t.store(), &t.optimizer(), grid.world());
    } catch (const Error& e) {
      message = e.what();
    }
    const std::string want = grid.tp_rank() == 1 ? "truncated" : "failed on another rank";
    EXPECT_NE(message.find(want), std::string::npos) << "rank " << grid.world().rank() << ": " << message;
  });
}

// Ranks that write nothing wait for those that do. A slow file system (rank 0's shard takes 2.5 s
// here) must be waited for under --io-timeout, not end the job as a collective that timed out
// after --collective-timeout (1 s here), as it did when every wait had the collective deadline.
TEST(CheckpointIo, ASlowWriterIsWaitedForUnderTheIoDeadline) {
  kernels::set_num_threads(1);
  SharedTempDir tmp;
  parallel::ProcessGrid grid(1, world_size(), 1.0);  // only world rank 0 writes
  train::Trainer t(options(1, world_size()), grid);
  if (grid.world_rank() == 0) ::setenv("TESSERA_TEST_SLOW_SHARD_WRITE", "2.5", 1);
  const fs::path dir = checkpoint::save_checkpoint(tmp.path(), t.store(), &t.optimizer(), grid, {1, "", "{}"});
  ::unsetenv("TESSERA_TEST_SLOW_SHARD_WRITE");
  EXPECT_TRUE(checkpoint::verify_checkpoint(dir).empty());
}

// A background save under tp x dp (and a sharded optimizer) writes the same bytes as a
// synchronous one, while the ranks go on training.
TEST(CheckpointAsync, ABackgroundSaveWritesWhatASynchronousSaveWrites) {
  kernels::set_num_threads(1);
  SharedTempDir tmp;
  for (const Layout& layout : layouts()) {
    if (layout.single) continue;
    SCOPED_TRACE(layout.name());
    parallel::ProcessGrid grid(layout.tp, layout.dp, 60.0);
    train::TrainOptions o = options(layout.tp, layout.dp);
    o.batch_sentences = 8;
    o.shard_optimizer = layout.dp > 1;
    train::Trainer t(o, grid);
    for (int64_t step = 0; step < 2; ++step) t.train_step(batch_for_step(step));
    const fs::path sync_root = tmp.path() / ("sync-" + layout.name()), async_root = tmp.path() / ("async-" + layout.name());
    checkpoint::save_checkpoint(sync_root, t.store(), &t.optimizer(), grid, {2, "", "{}"});
    checkpoint::CheckpointSaver saver(async_root, grid, {{}, true, 60});
    saver.save(t.store(), &t.optimizer(), {2, "", "{}"});
    t.train_step(batch_for_step(2));
    saver.poll();
    saver.finish();
    const checkpoint::Manifest a = checkpoint::read_manifest(sync_root / "step-00000002");
    const checkpoint::Manifest b = checkpoint::read_manifest(async_root / "step-00000002");
    ASSERT_EQ(a.shards.size(), b.shards.size());
    for (size_t i = 0; i < a.shards.size(); ++i) {
      EXPECT_EQ(a.shards[i].xxh3, b.shards[i].xxh3) << a.shards[i].file;
      EXPECT_EQ(a.shards[i].bytes, b.shards[i].bytes) << a.shards[i].file;
    }
    EXPECT_EQ(a.to_json(), b.to_json());
    EXPECT_TRUE(checkpoint::verify_checkpoint(async_root / "step-00000002").empty());
  }
}

}  // namespace
}  // namespace tessera
