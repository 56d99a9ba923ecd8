#include "checkpoint/checkpoint_saver.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "checkpoint/agreement.h"
#include "checkpoint/atomic_file.h"
#include "checkpoint/shard_layout.h"
#include "core/log.h"

namespace tessera::checkpoint {

namespace fs = std::filesystem;

namespace {

constexpr const char* kStagingSuffix = ".staging";
constexpr const char* kReplacedSuffix = kReplacedDirectorySuffix;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

uint64_t from_hex(const std::string& hex) { return hex.empty() ? 0 : std::stoull(hex, nullptr, 16); }
std::string to_hex(uint64_t v) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(v));
  return text;
}

// What a killed save leaves behind in ROOT: staging directories, directories being replaced, and
// temporary files of atomic writes. None of them is ever named by `latest`.
void remove_leftovers(const fs::path& root) {
  for (const auto& entry : fs::directory_iterator(root)) {
    const std::string name = entry.path().filename().string();
    if (name.ends_with(kStagingSuffix) || name.ends_with(kReplacedSuffix) || name.find(".tmp-") != std::string::npos) {
      TESSERA_LOG_INFO("removing ", entry.path().string(), ", left by an interrupted save");
      fs::remove_all(entry.path());
    }
  }
}

}  // namespace

// One save between its snapshot and its commit.
struct CheckpointSaver::Pending {
  fs::path dir, staging;
  Manifest manifest;  // world rank 0 only: the layout, checksums still empty
  std::vector<std::vector<std::string>> shard_keys;  // world rank 0 only: each shard's tensors in order
  size_t max_entries = 0;
  bool writer = false;
  std::exception_ptr error;  // the snapshot's or the write's, on this rank
  ShardSnapshot shard;
  std::future<SafetensorsWriter::Written> write;  // async writes
  std::optional<SafetensorsWriter::Written> written;
};

CheckpointSaver::CheckpointSaver(fs::path root, const parallel::ProcessGrid& grid, SavePolicy policy)
    : root_(std::move(root)), grid_(grid), policy_(policy) {
  TESSERA_CHECK(policy_.io_timeout_s > 0, "--io-timeout: must be positive, got ", policy_.io_timeout_s);
  std::exception_ptr error;
  if (grid_.world_rank() == 0) error = attempt([&] {
    fs::create_directories(root_);
    remove_leftovers(root_);
  });
  agree(grid_.world(), error, "preparing checkpoint directory " + root_.string());
}

CheckpointSaver::~CheckpointSaver() {
  if (pending_ && pending_->write.valid()) pending_->write.wait();
}

void CheckpointSaver::save(const model::ParameterStore& store, const train::Adam* adam,
                           const CheckpointExtras& extras) {
  finish();
  const auto start = std::chrono::steady_clock::now();
  parallel::Communicator& world = grid_.world();
  auto p = std::make_unique<Pending>();
  p->dir = step_directory(root_, extras.step);
  p->staging = p->dir.string() + kStagingSuffix;
  p->writer = grid_.dp_rank() == 0;

  // Sharded moments come together on every rank of the data-parallel group (a collective).
  std::optional<train::Adam::Moments> moments;
  agree(world, attempt([&] {
          if (adam) moments = adam->store_layout_moments();
        }),
        "gathering the optimizer state of checkpoint " + p->dir.string());
  std::exception_ptr error = attempt([&] {
    for (int r = 0; r < grid_.tp_size(); ++r) {
      const std::vector<ShardEntry> entries = shard_entries(store, r, grid_.tp_size(), adam != nullptr);
      p->max_entries = std::max(p->max_entries, entries.size());
      if (grid_.world_rank() != 0) continue;
      p->shard_keys.emplace_back();
      for (const ShardEntry& e : entries) p->shard_keys.back().push_back(e.key);
    }
    if (grid_.world_rank() == 0) {
      p->manifest = describe_layout(store, grid_.tp_size(), adam != nullptr);
      p->manifest.step = extras.step;
      p->manifest.optimizer_step = adam ? adam->step() : -1;
      p->manifest.data_parallel = grid_.dp_size();
      p->manifest.config = extras.config;
      p->manifest.sampler_state = extras.sampler_state;
    }
    if (!p->writer) return;
    p->shard = snapshot_shard(store, moments ? &*moments : nullptr, grid_.tp_rank(), grid_.tp_size(), extras.step,
                              policy_.async);
    check_finite(p->shard, p->dir);
    fs::create_directories(p->staging);
  });
  agree(world, error, "taking checkpoint " + p->dir.string());

  if (p->writer) {
    if (policy_.async) {
      p->write = std::async(std::launch::async, [staging = p->staging, &shard = p->shard] {
        return write_shard(staging, shard);
      });
    } else {
      p->error = attempt([&] { p->written = write_shard(p->staging, p->shard); });
    }
  }
  pending_ = std::move(p);
  if (!policy_.async) commit();
  last_stall_s_ = seconds_since(start);
}

void CheckpointSaver::poll() {
  if (!pending_) return;
  Pending& p = *pending_;
  // [not finished, failed] on this rank, then their maximum over the world.
  int32_t state[2] = {0, 0};
  if (p.write.valid()) {
    if (p.write.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      state[0] = 1;
    } else {
      p.error = attempt([&] { p.written = p.write.get(); });
    }
  }
  state[1] = p.error ? 1 : 0;
  grid_.world().all_reduce(state, 2, DType::i32, parallel::ReduceOp::max);
  if (state[1] != 0) {
    const std::unique_ptr<Pending> failed = std::move(pending_);  // the run stops; nothing is committed
    if (failed->error) std::rethrow_exception(failed->error);
    TESSERA_FAIL("writing checkpoint ", failed->dir.string(), " failed on another rank (its own error says why)");
  }
  if (state[0] == 0) commit();
}

void CheckpointSaver::finish() {
  if (!pending_) return;
  Pending& p = *pending_;
  if (p.write.valid()) {
    if (p.write.wait_for(std::chrono::duration<double>(policy_.io_timeout_s)) == std::future_status::ready) {
      p.error = attempt([&] { p.written = p.write.get(); });
    } else {
      p.error = std::make_exception_ptr(Error(detail::concat(
          "writing ", (p.staging / p.shard.file).string(), " did not finish within --io-timeout ", policy_.io_timeout_s,
          " s (a stalled file system?)")));
      // The write may never return; leave it behind rather than block the job's exit on it.
      new std::future<SafetensorsWriter::Written>(std::move(p.write));
    }
  }
  commit();
}

void CheckpointSaver::commit() {
  std::unique_ptr<Pending> owned = std::move(pending_);
  Pending& p = *owned;
  parallel::Communicator& world = grid_.world();
  agree_after_io(world, p.error, "writing a shard of checkpoint " + p.dir.string(), policy_.io_timeout_s);

  // Every writer's size and checksums come to world rank 0, as words of a fixed-size row per rank:
  // [file bytes, file xxh3, xxh3 of each tensor in shard order]. Writer r is world rank r.
  const size_t words = 2 + p.max_entries;
  std::vector<uint64_t> mine(words, 0), all(words * static_cast<size_t>(world.size()), 0);
  if (p.writer) {
    mine[0] = p.written->bytes;
    mine[1] = from_hex(p.written->xxh3);
    for (size_t i = 0; i < p.shard.tensors.size(); ++i)
      mine[2 + i] = from_hex(p.written->tensor_xxh3.at(p.shard.tensors[i].first));
  }
  world.all_gather(mine.data(), all.data(), 2 * words, DType::i32);  // moves bits only

  // World rank 0: the manifest, then the directory moves into place, then `latest`, then pruning.
  std::exception_ptr error;
  if (grid_.world_rank() == 0) error = attempt([&] {
    Manifest& m = p.manifest;
    for (int r = 0; r < grid_.tp_size(); ++r) {
      const uint64_t* row = all.data() + words * static_cast<size_t>(r);
      SafetensorsWriter::Written written{row[0], to_hex(row[1]), {}};
      const std::vector<std::string>& keys = p.shard_keys[static_cast<size_t>(r)];
      for (size_t i = 0; i < keys.size(); ++i) written.tensor_xxh3[keys[i]] = to_hex(row[2 + i]);
      record_written_shard(m, shard_name(r, grid_.tp_size()), written);
    }
    write_file_atomically(p.staging / kManifestName, m.to_json());
    install_directory(p.staging, p.dir);
    write_file_atomically(root_ / "latest", p.dir.filename().string() + "\n");
    std::vector<int64_t> steps;
    for (const SavedCheckpoint& c : list_checkpoints(root_)) steps.push_back(c.step);
    for (int64_t step : steps_to_prune(steps, policy_.retention, m.step)) {
      TESSERA_LOG_INFO("removing checkpoint ", step_directory(root_, step).string(), " (--keep-last ",
                       policy_.retention.keep_last, ", --keep-every ", policy_.retention.keep_every, ")");
      // Renamed out of the step-N pattern first, so a kill mid-removal leaves nothing that looks
      // like a checkpoint; the next start removes the rest.
      const fs::path doomed = step_directory(root_, step).string() + kReplacedSuffix;
      fs::rename(step_directory(root_, step), doomed);
      fs::remove_all(doomed);
    }
  });
  agree_after_io(world, error, "committing checkpoint " + p.dir.string(), policy_.io_timeout_s);
  last_committed_ = p.dir;
}

}  // namespace tessera::checkpoint
