// TensorBoard event files (scalars) written directly, without TensorFlow or protobuf.
//
// An event file is a TFRecord stream: each record is
//   uint64 length | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)
// (little-endian), and each record's data is one serialized `tensorboard.Event` protobuf. The
// first event holds file_version "brain.Event:2"; every scalar is an Event{wall_time, step,
// summary{value{tag, simple_value}}}.
//
// Records are buffered and written whole at flush(), so between flushes the file ends at a record
// boundary. A process killed inside flush() can leave a partial last record; TensorBoard treats it
// as not yet written (both its loaders stop reading that file there, keep every earlier record and
// go on to the next file), and a resumed run writes to a new file, so nothing after it is lost.
//
// Resuming. A resumed run opens a new file in the same directory; TensorBoard reads a directory's
// event files in name order, which is start-time order, as one run. The interrupted run's points
// after the checkpoint are orphans that the resumed run redoes. Every writer marks the start of
// its session with a SessionLog START event, and a resumed run calls start_session(resumed_step)
// before its first scalar to place it exactly. A user then sees:
// - `tensorboard --logdir` (the default, Rust data server) ignores the SessionLog event and drops
//   old points per tag instead: the resumed run's first point of a tag at step s drops that tag's
//   points at steps >= s. Orphans between the resumed step and s stay; there are none when the
//   tag is logged every k steps and k divides the resumed step (log and validate at checkpoints).
// - `tensorboard --load_fast=false` and EventAccumulator (the Python loaders) drop orphans only on
//   a SessionLog START event: at its step S, every point already read at a step >= S, of every tag,
//   is dropped at once. Without it they keep both runs' points for the same steps (a zigzag). The
//   server's loader ignores the first START of a run (it is not a restart), hence one per session.
// Sources: tensorboard/backend/event_processing/{event_accumulator,plugin_event_accumulator}.py
// (_CheckForRestartAndMaybePurge; _Purge keeps step < S) and tensorboard/data/server/reservoir.rs
// (StageReservoir::preempt).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/owned_fd.h"

namespace tessera::train {

// CRC-32C (Castagnoli), the checksum of TFRecord; crc32c("123456789") = 0xE3069283.
uint32_t crc32c(std::string_view bytes);
// The CRC as TFRecord stores it, rotated and offset so that data holding its own CRC does not
// checksum to a fixed value: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t masked_crc32c(std::string_view bytes);

// Appends scalar summaries to a new TensorBoard event file in `dir`, named
// events.out.tfevents.<unix seconds>.<host>.<pid>.tessera (".1", ".2", ... appended when this
// process already opened that name, so names still sort in opening order). Errors (the directory
// or file cannot be created, a write fails) throw tessera::Error naming the path.
class TensorBoardWriter {
 public:
  // Creates `dir` if needed and writes the file_version event.
  explicit TensorBoardWriter(const std::filesystem::path& dir);
  // Flushes; a failure is logged as a warning (a destructor does not throw).
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // One point of the curve `tag` (e.g. "train/loss"). TensorBoard stores scalars as float32.
  // wall_time_s: unix seconds. The first scalar of a session that start_session did not start
  // starts it at its own step.
  void add_scalar(std::string_view tag, int64_t step, double value, double wall_time_s);

  // Marks a resume from the checkpoint of `resumed_step`, before the first scalar: the interrupted
  // run's points at steps after it are dropped (see above). Writes SessionLog{START} at step
  // resumed_step + 1, because TensorBoard keeps only the points whose step is smaller than the
  // START event's.
  void start_session(int64_t resumed_step, double wall_time_s);

  // Writes the buffered records to the OS (no fsync). If the write fails, the file is cut back to
  // its last whole record and the records stay buffered for the next flush.
  void flush();

  const std::filesystem::path& path() const { return path_; }

 private:
  void write_session_start(int64_t step, double wall_time_s);
  void append_record(const std::string& event);

  std::filesystem::path path_;
  OwnedFd fd_;
  std::string pending_;      // whole records not yet written
  int64_t flushed_size_ = 0;  // file size after the last successful flush
  bool session_started_ = false;
};

}  // namespace tessera::train
