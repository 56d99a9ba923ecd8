// Saving a run's checkpoints: safely, with retention, and optionally in the background.
//
// A save of step N goes through a staging directory and never disturbs a complete checkpoint:
//   1. snapshot: every writer (the ranks of data-parallel replica 0) takes its shard out of the
//      training state; with async, into host copies so training can go on at once;
//   2. write: each writer writes its shard into ROOT/step-N.staging and checksums it as it goes
//      (on a background thread with async);
//   3. commit (collective): the writers' sizes and checksums come to world rank 0, which writes the
//      manifest into the staging directory, moves it into place as ROOT/step-N, points `latest` at
//      it, and only then prunes what the retention policy lets go.
// Moving into place is a rename; when step-N already exists (a step saved again), the two
// directories are exchanged atomically (renameat2 RENAME_EXCHANGE), so `latest` names a complete
// checkpoint at every instant, and a kill at any moment loses at most the save in progress.
// Ranks that wait for others' I/O wait under --io-timeout, not under the collective deadline.
#pragma once

#include <filesystem>
#include <future>
#include <memory>
#include <optional>

#include "checkpoint/checkpoint.h"
#include "checkpoint/manifest.h"
#include "checkpoint/retention.h"
#include "checkpoint/shard_snapshot.h"

namespace tessera::checkpoint {

struct SavePolicy {
  RetentionPolicy retention;
  bool async = false;           // write in the background while training continues
  double io_timeout_s = 1800;   // how long a rank may wait for checkpoint I/O (its own or others')
};

class CheckpointSaver {
 public:
  // Collective over grid.world(). World rank 0 creates ROOT and removes what a killed save left
  // (staging directories, temporary files); nothing complete is touched.
  CheckpointSaver(std::filesystem::path root, const parallel::ProcessGrid& grid, SavePolicy policy = {});
  // Waits for a background write still running (without committing it).
  ~CheckpointSaver();
  CheckpointSaver(const CheckpointSaver&) = delete;
  CheckpointSaver& operator=(const CheckpointSaver&) = delete;

  // Collective. Commits the save in flight (waiting for it), then saves extras.step: written and
  // committed before returning, or with async only snapshotted, the write left to a background
  // thread and the commit to poll() or finish(). Throws on every rank if any rank failed.
  void save(const model::ParameterStore& store, const train::Adam* adam, const CheckpointExtras& extras);
  // Collective and cheap (one small all-reduce while a save is in flight, nothing otherwise):
  // commits the background save once every writer is done; throws on every rank if a write failed.
  void poll();
  // Collective: waits for and commits the save in flight, if any.
  void finish();

  bool in_flight() const { return pending_ != nullptr; }
  // The directory of the checkpoint committed last (empty before the first).
  const std::filesystem::path& last_committed() const { return last_committed_; }
  // Seconds the last save() kept the caller from training (snapshot, plus the write when sync).
  double last_stall_seconds() const { return last_stall_s_; }

 private:
  struct Pending;
  void commit();

  std::filesystem::path root_;
  const parallel::ProcessGrid& grid_;
  SavePolicy policy_;
  std::unique_ptr<Pending> pending_;
  std::filesystem::path last_committed_;
  double last_stall_s_ = 0;
};

}  // namespace tessera::checkpoint
