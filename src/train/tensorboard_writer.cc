#include "train/tensorboard_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <boost/crc.hpp>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/log.h"
#include "core/write_all.h"

namespace tessera::train {
namespace fs = std::filesystem;

uint32_t crc32c(std::string_view bytes) {
  // The Castagnoli polynomial, bit-reflected, with initial and final XOR 0xFFFFFFFF.
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(bytes.data(), bytes.size());
  return crc.checksum();
}

uint32_t masked_crc32c(std::string_view bytes) {
  const uint32_t crc = crc32c(bytes);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

namespace {

// --- Protocol-buffer encoding, just what an Event needs ---------------------------------------
// Each field is a key, (field number << 3) | wire type, as a varint, followed by its value laid
// out as the wire type says.
enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

// Base-128 varint: 7 bits a byte, least significant first, the high bit set on all but the last.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_key(std::string& out, uint32_t field, WireType type) { put_varint(out, (uint64_t{field} << 3) | type); }

void put_little_endian(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_double(std::string& out, uint32_t field, double v) {
  put_key(out, field, kFixed64);
  put_little_endian(out, std::bit_cast<uint64_t>(v), 8);
}

void put_float(std::string& out, uint32_t field, float v) {
  put_key(out, field, kFixed32);
  put_little_endian(out, std::bit_cast<uint32_t>(v), 4);
}

// int64 and enums are varints of the two's complement (a negative number takes 10 bytes).
void put_int64(std::string& out, uint32_t field, int64_t v) {
  put_key(out, field, kVarint);
  put_varint(out, static_cast<uint64_t>(v));
}

// Strings and nested messages: the byte length, then the bytes.
void put_bytes(std::string& out, uint32_t field, std::string_view bytes) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out.append(bytes);
}

// --- tensorboard.Event (tensorboard/compat/proto/event.proto, summary.proto) --------------------
constexpr uint32_t kEventWallTime = 1, kEventStep = 2, kEventFileVersion = 3, kEventSummary = 5,
                   kEventSessionLog = 7;
constexpr uint32_t kSummaryValue = 1, kValueTag = 1, kValueSimpleValue = 2;
constexpr uint32_t kSessionLogStatus = 1;
constexpr int64_t kSessionLogStart = 1;

// The fields every event starts with. A step of 0 is left out, as protobuf leaves out defaults.
std::string event_head(double wall_time_s, int64_t step) {
  std::string event;
  put_double(event, kEventWallTime, wall_time_s);
  if (step != 0) put_int64(event, kEventStep, step);
  return event;
}

double unix_seconds_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "localhost";
  return name;
}

}  // namespace

TensorBoardWriter::TensorBoardWriter(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  TESSERA_CHECK(!ec, "cannot create TensorBoard directory '", dir.string(), "': ", ec.message());
  TESSERA_CHECK(fs::is_directory(dir), "TensorBoard directory '", dir.string(), "' is not a directory");

  const double now = unix_seconds_now();
  const std::string base = "events.out.tfevents." + std::to_string(static_cast<int64_t>(std::floor(now))) + "." +
                           host_name() + "." + std::to_string(::getpid()) + ".tessera";
  // O_EXCL: never append to, or clobber, another writer's file. O_APPEND: every write lands at
  // the end, also after flush() cut a partial write back.
  for (int n = 0; !fd_.valid(); ++n) {
    path_ = dir / (n == 0 ? base : base + "." + std::to_string(n));
    fd_ = OwnedFd(::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644));
    const int err = errno;
    TESSERA_CHECK(fd_.valid() || err == EEXIST, "cannot create TensorBoard event file ", path_.string(), ": ",
                  std::strerror(err));
  }

  std::string event = event_head(now, 0);
  put_bytes(event, kEventFileVersion, "brain.Event:2");
  append_record(event);
  flush();
}

TensorBoardWriter::~TensorBoardWriter() {
  try {
    flush();
  } catch (const Error& e) {
    TESSERA_LOG_WARN("TensorBoard: ", e.what());
  }
}

void TensorBoardWriter::add_scalar(std::string_view tag, int64_t step, double value, double wall_time_s) {
  if (!session_started_) write_session_start(step, wall_time_s);
  std::string value_msg;
  put_bytes(value_msg, kValueTag, tag);
  put_float(value_msg, kValueSimpleValue, static_cast<float>(value));
  std::string summary;
  put_bytes(summary, kSummaryValue, value_msg);
  std::string event = event_head(wall_time_s, step);
  put_bytes(event, kEventSummary, summary);
  append_record(event);
}

void TensorBoardWriter::start_session(int64_t resumed_step, double wall_time_s) {
  TESSERA_CHECK(!session_started_, "TensorBoard event file ", path_.string(),
                ": start_session must come before the first scalar, or it drops this session's own points");
  write_session_start(resumed_step + 1, wall_time_s);
}

void TensorBoardWriter::write_session_start(int64_t step, double wall_time_s) {
  std::string session_log;
  put_int64(session_log, kSessionLogStatus, kSessionLogStart);
  std::string event = event_head(wall_time_s, step);
  put_bytes(event, kEventSessionLog, session_log);
  append_record(event);
  session_started_ = true;
}

// One TFRecord: the length and the data, each followed by its masked CRC.
void TensorBoardWriter::append_record(const std::string& event) {
  std::string length;
  put_little_endian(length, event.size(), 8);
  pending_ += length;
  put_little_endian(pending_, masked_crc32c(length), 4);
  pending_ += event;
  put_little_endian(pending_, masked_crc32c(event), 4);
}

void TensorBoardWriter::flush() {
  if (pending_.empty()) return;
  if (const int err = write_all(fd_.get(), pending_.data(), pending_.size()); err != 0) {
    // Part of the buffer may be out: cut it off so the file ends at a whole record.
    const bool cut = ::ftruncate(fd_.get(), flushed_size_) == 0;
    TESSERA_FAIL("cannot write TensorBoard event file ", path_.string(), ": ", std::strerror(err),
                 cut ? "" : " (and cannot cut off the partial record)");
  }
  flushed_size_ += static_cast<int64_t>(pending_.size());
  pending_.clear();
}

}  // namespace tessera::train
