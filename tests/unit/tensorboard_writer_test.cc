// TensorBoard event files: the CRC against published check values, the bytes of a scalar record
// against what protobuf itself serializes, and files read back by a small reader written here
// from the format (TFRecord framing, both CRCs, protobuf fields), through flushes, a failed write,
// a run killed mid-write and its resume.
#include "train/tensorboard_writer.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <csignal>
#include <fstream>
#include <random>
#include <sstream>
#include <vector>

#include "file_test_util.h"

namespace tessera {
namespace {
namespace fs = std::filesystem;
using testing::contains;
using testing::error_of;
using testing::TempDir;
using train::TensorBoardWriter;

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// --- an independent reader ----------------------------------------------------------------------

uint64_t read_little_endian(std::string_view s, size_t pos, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{static_cast<unsigned char>(s[pos + i])} << (8 * i);
  return v;
}

uint64_t read_varint(std::string_view s, size_t& pos) {
  uint64_t v = 0;
  for (int shift = 0; pos < s.size() && shift < 64; shift += 7) {
    const auto byte = static_cast<unsigned char>(s[pos++]);
    v |= uint64_t{byte & 0x7fu} << shift;
    if (byte < 0x80) return v;
  }
  ADD_FAILURE() << "varint runs past the end of the message";
  return v;
}

// The records of an event file, each CRC checked, and how many bytes after the last whole record
// remain (a partial record: 0 unless the writer was cut off mid-write).
struct Records {
  std::vector<std::string> data;
  size_t partial_tail = 0;
};

Records read_records(const fs::path& file) {
  const std::string s = read_bytes(file);
  Records r;
  size_t pos = 0;
  while (pos < s.size()) {
    if (s.size() - pos < 12) break;
    const uint64_t length = read_little_endian(s, pos, 8);
    EXPECT_EQ(read_little_endian(s, pos + 8, 4), train::masked_crc32c(std::string_view(s).substr(pos, 8)))
        << "length CRC of the record at byte " << pos;
    if (s.size() - pos < 12 + length + 4) break;
    const std::string data = s.substr(pos + 12, length);
    EXPECT_EQ(read_little_endian(s, pos + 12 + length, 4), train::masked_crc32c(data))
        << "data CRC of the record at byte " << pos;
    r.data.push_back(data);
    pos += 12 + length + 4;
  }
  r.partial_tail = s.size() - pos;
  return r;
}

// One protobuf field: varint and fixed-size values in `number`, strings and messages in `bytes`.
struct Field {
  uint32_t id = 0;
  uint32_t wire_type = 0;
  uint64_t number = 0;
  std::string bytes;
};

std::vector<Field> parse_message(std::string_view msg) {
  std::vector<Field> fields;
  size_t pos = 0;
  while (pos < msg.size()) {
    const uint64_t key = read_varint(msg, pos);
    Field f;
    f.id = static_cast<uint32_t>(key >> 3);
    f.wire_type = static_cast<uint32_t>(key & 7);
    if (f.wire_type == 0) {
      f.number = read_varint(msg, pos);
    } else if (f.wire_type == 1 || f.wire_type == 5) {
      const int bytes = f.wire_type == 1 ? 8 : 4;
      if (pos + bytes > msg.size()) break;
      f.number = read_little_endian(msg, pos, bytes);
      pos += bytes;
    } else if (f.wire_type == 2) {
      const uint64_t length = read_varint(msg, pos);
      if (pos + length > msg.size()) break;
      f.bytes = std::string(msg.substr(pos, length));
      pos += length;
    } else {
      ADD_FAILURE() << "unexpected wire type " << f.wire_type;
      return fields;
    }
    fields.push_back(f);
  }
  EXPECT_EQ(pos, msg.size()) << "message ends inside a field";
  return fields;
}

// A tensorboard.Event, decoded from the field numbers of event.proto and summary.proto.
struct Event {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  std::vector<std::pair<std::string, float>> values;  // summary { value { tag simple_value } }
  int64_t session_status = -1;                         // session_log { status }, -1 when absent
};

Event decode_event(std::string_view data) {
  Event e;
  for (const Field& f : parse_message(data)) {
    if (f.id == 1 && f.wire_type == 1) e.wall_time = std::bit_cast<double>(f.number);
    else if (f.id == 2 && f.wire_type == 0) e.step = static_cast<int64_t>(f.number);
    else if (f.id == 3 && f.wire_type == 2) e.file_version = f.bytes;
    else if (f.id == 5 && f.wire_type == 2) {
      for (const Field& v : parse_message(f.bytes)) {
        EXPECT_EQ(v.id, 1u);
        std::pair<std::string, float> tag_value;
        for (const Field& tv : parse_message(v.bytes)) {
          if (tv.id == 1 && tv.wire_type == 2) tag_value.first = tv.bytes;
          else if (tv.id == 2 && tv.wire_type == 5) tag_value.second = std::bit_cast<float>(static_cast<uint32_t>(tv.number));
          else ADD_FAILURE() << "unexpected Summary.Value field " << tv.id;
        }
        e.values.push_back(tag_value);
      }
    } else if (f.id == 7 && f.wire_type == 2) {
      for (const Field& s : parse_message(f.bytes))
        if (s.id == 1 && s.wire_type == 0) e.session_status = static_cast<int64_t>(s.number);
    } else {
      ADD_FAILURE() << "unexpected Event field " << f.id << " (wire type " << f.wire_type << ")";
    }
  }
  return e;
}

std::vector<Event> read_events(const fs::path& file) {
  std::vector<Event> events;
  for (const std::string& data : read_records(file).data) events.push_back(decode_event(data));
  return events;
}

std::vector<fs::path> event_files(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) files.push_back(entry.path());
  std::sort(files.begin(), files.end());  // TensorBoard's reading order
  return files;
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// --- CRC ----------------------------------------------------------------------------------------

TEST(Crc32c, MatchesPublishedCheckValues) {
  EXPECT_EQ(train::crc32c("123456789"), 0xE3069283u);  // the CRC catalogue's check value
  EXPECT_EQ(train::crc32c(""), 0u);
  // RFC 3720 (iSCSI), B.4: 32 bytes of zeros, and of ones.
  EXPECT_EQ(train::crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(train::crc32c(std::string(32, '\xff')), 0x62A8AB43u);
}

TEST(Crc32c, MaskedAsTensorBoardReadsIt) {
  // Values of masked_crc32c in TensorBoard's own reader (tensorboard/compat/tensorflow_stub).
  EXPECT_EQ(train::masked_crc32c("123456789"), 0xC78AB0E5u);
  EXPECT_EQ(train::masked_crc32c(""), 0xA282EAD8u);
}

// --- the writer ---------------------------------------------------------------------------------

TEST(TensorBoardWriter, ScalarRecordIsWhatProtobufSerializes) {
  TempDir dir;
  TensorBoardWriter w(dir.path());
  w.add_scalar("train/loss", 300000, 2.5, 1700000000.25);
  w.flush();
  // The TFRecord of Event(wall_time=1700000000.25, step=300000, summary=Summary(value=[
  // Value(tag="train/loss", simple_value=2.5)])), serialized by Python's protobuf and framed with
  // TensorBoard's masked_crc32c.
  const unsigned char expected[] = {
      0x22, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x78, 0x11, 0x3d, 0xfd, 0x09, 0x00, 0x00, 0x10, 0x40,
      0xfc, 0x54, 0xd9, 0x41, 0x10, 0xe0, 0xa7, 0x12, 0x2a, 0x13, 0x0a, 0x11, 0x0a, 0x0a, 0x74, 0x72, 0x61,
      0x69, 0x6e, 0x2f, 0x6c, 0x6f, 0x73, 0x73, 0x15, 0x00, 0x00, 0x20, 0x40, 0xb3, 0xef, 0x65, 0x1c};
  const std::string file = read_bytes(w.path());
  ASSERT_GE(file.size(), sizeof expected);
  EXPECT_EQ(file.substr(file.size() - sizeof expected), std::string(reinterpret_cast<const char*>(expected), sizeof expected));
}

TEST(TensorBoardWriter, ScalarsReadBackWithTheirTagsStepsValuesAndTimes) {
  TempDir dir;
  const fs::path tb_dir = dir.path() / "runs" / "a";  // created by the writer
  const double opened = unix_now();
  struct Point {
    std::string tag;
    int64_t step;
    double value, wall_time;
  };
  std::vector<Point> points;
  std::uniform_real_distribution<double> u(-1e3, 1e3);
  const std::vector<std::string> tags = {"train/loss", "valid/bleu", "time/step_s", std::string(200, 't')};
  const std::vector<int64_t> steps = {0, 1, 127, 128, 300000, int64_t{1} << 40};
  for (int64_t step : steps)
    for (const std::string& tag : tags) points.push_back({tag, step, u(testing::rng()), opened + u(testing::rng())});
  fs::path file;
  {
    TensorBoardWriter w(tb_dir);
    file = w.path();
    for (const Point& p : points) w.add_scalar(p.tag, p.step, p.value, p.wall_time);
    w.flush();
  }

  const std::string name = file.filename().string();
  EXPECT_EQ(file.parent_path(), tb_dir);
  EXPECT_EQ(name.rfind("events.out.tfevents.", 0), 0u) << name;
  EXPECT_TRUE(contains(name, "." + std::to_string(::getpid()) + ".tessera")) << name;

  const Records records = read_records(file);
  EXPECT_EQ(records.partial_tail, 0u);
  const std::vector<Event> events = read_events(file);
  ASSERT_EQ(events.size(), points.size() + 2);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  EXPECT_NEAR(events[0].wall_time, opened, 60);
  EXPECT_TRUE(events[0].values.empty());
  // The session starts at the first scalar (no start_session: not a resume).
  EXPECT_EQ(events[1].session_status, 1);
  EXPECT_EQ(events[1].step, points[0].step);
  EXPECT_EQ(events[1].wall_time, points[0].wall_time);
  for (size_t i = 0; i < points.size(); ++i) {
    const Event& e = events[i + 2];
    SCOPED_TRACE(points[i].tag + " at step " + std::to_string(points[i].step));
    EXPECT_EQ(e.step, points[i].step);
    EXPECT_EQ(e.wall_time, points[i].wall_time);
    ASSERT_EQ(e.values.size(), 1u);
    EXPECT_EQ(e.values[0].first, points[i].tag);
    EXPECT_EQ(e.values[0].second, static_cast<float>(points[i].value));  // TensorBoard keeps float32
    EXPECT_EQ(e.session_status, -1);
  }
}

TEST(TensorBoardWriter, FileHoldsOnlyWholeRecordsAtEveryFlush) {
  TempDir dir;
  TensorBoardWriter w(dir.path());
  EXPECT_EQ(read_records(w.path()).data.size(), 1u);  // the file_version event, written at once
  for (int round = 1; round <= 3; ++round) {
    const size_t before = read_records(w.path()).data.size();
    for (int i = 0; i < 5; ++i) w.add_scalar("train/loss", round * 10 + i, 1.0 / (i + 1), 1e9);
    EXPECT_EQ(read_records(w.path()).data.size(), before) << "scalars reach the file only at flush";
    w.flush();
    const Records r = read_records(w.path());
    EXPECT_EQ(r.data.size(), 2u + 5 * round);  // file_version, START, the scalars
    EXPECT_EQ(r.partial_tail, 0u);
  }
}

TEST(TensorBoardWriter, ClosingFlushes) {
  TempDir dir;
  fs::path file;
  {
    TensorBoardWriter w(dir.path());
    file = w.path();
    w.add_scalar("train/lr", 7, 0.125, 1e9);
  }
  const std::vector<Event> events = read_events(file);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].step, 7);
  EXPECT_EQ(events[2].values.at(0).second, 0.125f);
}

// Restores a resource limit and a signal disposition when the test ends.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);  // exceeding it then fails write(2) with EFBIG
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() { lift(); }
  void lift() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit saved_{};
  void (*old_handler_)(int) = nullptr;
};

TEST(TensorBoardWriter, FailedWriteIsCutBackToWholeRecordsAndRetried) {
  TempDir dir;
  TensorBoardWriter w(dir.path());
  w.add_scalar("train/loss", 1, 3.0, 1e9);
  w.flush();
  const auto good_size = fs::file_size(w.path());
  {
    // A full disk, here a file size limit a few bytes past the end: the next flush gets some of
    // its bytes out, then fails.
    FileSizeLimit limit(good_size + 10);
    for (int step = 2; step <= 4; ++step) w.add_scalar("train/loss", step, 3.0 / step, 1e9);
    const std::string error = error_of([&] { w.flush(); });
    EXPECT_TRUE(contains(error, w.path().string())) << error;
    EXPECT_EQ(fs::file_size(w.path()), good_size) << "the partial record is cut off";
    EXPECT_EQ(read_records(w.path()).partial_tail, 0u);
  }
  w.flush();  // space again: the records that failed are written now
  const Records r = read_records(w.path());
  EXPECT_EQ(r.partial_tail, 0u);
  ASSERT_EQ(r.data.size(), 6u);  // file_version, START, steps 1..4
  EXPECT_EQ(decode_event(r.data[5]).step, 4);
}

TEST(TensorBoardWriter, UnusableDirectoryIsAnErrorNamingIt) {
  TempDir dir;
  const fs::path plain = dir.path() / "plain";
  std::ofstream(plain) << "not a directory";
  for (const fs::path& bad : {plain / "tb", plain}) {
    const std::string error = error_of([&] { TensorBoardWriter w(bad); });
    EXPECT_TRUE(contains(error, bad.string())) << error;
  }
  if (::geteuid() != 0) {  // root writes in read-only directories
    const fs::path read_only = dir.path() / "read_only";
    fs::create_directories(read_only);
    ::chmod(read_only.c_str(), 0555);
    const std::string error = error_of([&] { TensorBoardWriter w(read_only); });
    EXPECT_TRUE(contains(error, read_only.string())) << error;
    ::chmod(read_only.c_str(), 0755);
  }
}

// A run killed mid-write and resumed from its checkpoint at step 3, in the same directory.
TEST(TensorBoardWriter, ResumeWritesANewFileAfterAKilledOne) {
  TempDir dir;
  fs::path killed;
  {
    TensorBoardWriter w(dir.path());
    killed = w.path();
    for (int step = 1; step <= 5; ++step) w.add_scalar("train/loss", step, 10.0 - step, 1e9 + step);
  }
  // The kill: the last record's final bytes never reached the file.
  const auto whole = fs::file_size(killed);
  fs::resize_file(killed, whole - 5);

  TensorBoardWriter resumed(dir.path());
  resumed.start_session(3, 2e9);
  for (int step = 4; step <= 6; ++step) resumed.add_scalar("train/loss", step, 20.0 - step, 2e9 + step);
  resumed.flush();

  // Read in TensorBoard's order (file names sort by opening time, then by opening order): the
  // killed file up to its partial record, then the resumed one.
  ASSERT_EQ(event_files(dir.path()), (std::vector<fs::path>{killed, resumed.path()}));
  const Records old_records = read_records(killed);
  EXPECT_GT(old_records.partial_tail, 0u);
  ASSERT_EQ(old_records.data.size(), 6u);  // file_version, START at 1, steps 1..4
  EXPECT_EQ(decode_event(old_records.data.back()).step, 4);

  const std::vector<Event> events = read_events(resumed.path());
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  // TensorBoard's Python loaders drop every point at step >= the START event's step: 4 drops the
  // killed run's steps 4 and 5 and keeps 1..3, which the checkpoint at step 3 covers.
  EXPECT_EQ(events[1].session_status, 1);  // SessionLog.START
  EXPECT_EQ(events[1].step, 4);
  EXPECT_EQ(events[1].wall_time, 2e9);
  EXPECT_TRUE(events[1].values.empty());
  for (int step = 4; step <= 6; ++step) {
    EXPECT_EQ(events[step - 2].step, step);
    EXPECT_EQ(events[step - 2].values.at(0).second, static_cast<float>(20.0 - step));
  }
}

TEST(TensorBoardWriter, StartSessionAfterAScalarIsAnError) {
  TempDir dir;
  TensorBoardWriter w(dir.path());
  w.add_scalar("train/loss", 4, 1.0, 1e9);
  EXPECT_TRUE(contains(error_of([&] { w.start_session(3, 1e9); }), "before the first scalar"));
}

}  // namespace
}  // namespace tessera
