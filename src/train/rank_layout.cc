#include "train/rank_layout.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "parallel/mpi_runtime.h"

namespace tessera::train {
namespace {

// One rank's record on the wire: five ints, then host and CPU list as NUL-padded text.
constexpr int kInts = 5, kTextWords = 32;  // 128 bytes of each text (longer is cut)
constexpr int kWords = kInts + 2 * kTextWords;

void pack_text(const std::string& text, int32_t* words) {
  char bytes[kTextWords * 4] = {};
  std::memcpy(bytes, text.data(), std::min(text.size(), sizeof bytes - 1));
  std::memcpy(words, bytes, sizeof bytes);
}
std::string unpack_text(const int32_t* words) {
  char bytes[kTextWords * 4 + 1] = {};
  std::memcpy(bytes, words, kTextWords * 4);
  return bytes;
}

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

}  // namespace

std::string cpu_list(const std::vector<int>& cpus) {
  std::ostringstream os;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    os << (i ? "," : "") << cpus[i];
    if (j > i) os << "-" << cpus[j];
    i = j + 1;
  }
  return cpus.empty() ? "?" : os.str();
}

std::vector<RankPlace> gather_rank_layout(const parallel::ProcessGrid& grid, int threads) {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "?");
  std::vector<int32_t> mine(kWords, 0);
  mine[0] = grid.world_rank();
  mine[1] = parallel::local_rank();
  mine[2] = grid.tp_rank();
  mine[3] = grid.dp_rank();
  mine[4] = threads;
  pack_text(host, mine.data() + kInts);
  pack_text(cpu_list(allowed_cpus()), mine.data() + kInts + kTextWords);
  const int n = grid.world().size();
  std::vector<int32_t> all(static_cast<size_t>(kWords) * n);
  grid.world().all_gather(mine.data(), all.data(), kWords, DType::i32);
  std::vector<RankPlace> places(n);
  for (int r = 0; r < n; ++r) {
    const int32_t* w = all.data() + static_cast<size_t>(kWords) * r;
    places[r] = {w[0], w[1], w[2], w[3], w[4], unpack_text(w + kInts), unpack_text(w + kInts + kTextWords)};
  }
  return places;
}

std::string rank_layout_table(const std::vector<RankPlace>& places) {
  size_t host_width = 4;
  for (const RankPlace& p : places) host_width = std::max(host_width, p.host.size());
  std::ostringstream os;
  auto pad = [](const std::string& s, size_t w) { return s + std::string(w > s.size() ? w - s.size() : 0, ' '); };
  os << "world  " << pad("host", host_width) << "  local  tp  dp  threads  cpus\n";
  for (const RankPlace& p : places) {
    char ints[64];
    std::snprintf(ints, sizeof ints, "%5d  ", p.world_rank);
    os << ints << pad(p.host, host_width);
    std::snprintf(ints, sizeof ints, "  %5d  %2d  %2d  %7d  ", p.local_rank, p.tp_rank, p.dp_rank, p.threads);
    os << ints << p.cpus << "\n";
  }
  return os.str();
}

}  // namespace tessera::train
