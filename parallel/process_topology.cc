#include "parallel/process_topology.h"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <map>
#include <numeric>
#include <set>

#include "core/error.h"
#include "parallel/mpi_runtime.h"

namespace tessera::parallel {
namespace {

constexpr size_t kHostBytes = 256;  // gathered host names are cut to this length

// "0-3, 6, 8-9": ascending ranks with consecutive runs as ranges.
std::string rank_list(const std::vector<int>& ranks) {
  std::string out;
  for (size_t i = 0; i < ranks.size();) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    out += detail::concat(out.empty() ? "" : ", ", ranks[i]);
    if (j > i) out += detail::concat("-", ranks[j]);
    i = j + 1;
  }
  return out;
}

// "2 ranks per node (--tensor-parallel 1 or 2 fits)" or, when nodes differ, their range.
std::string ranks_per_node_advice(const std::vector<std::string>& node_of_world_rank) {
  std::map<std::string, int> count;
  for (const std::string& node : node_of_world_rank) ++count[node];
  int lo = INT_MAX, hi = 0, g = 0;
  for (const auto& [node, n] : count) {
    lo = std::min(lo, n);
    hi = std::max(hi, n);
    g = std::gcd(g, n);
  }
  std::string fits;
  for (int d = 1; d <= g; ++d)
    if (g % d == 0) fits += detail::concat(fits.empty() ? "" : ", ", d);
  const std::string per_node =
      lo == hi ? detail::concat(lo, " ranks on each of ", count.size(), " nodes")
               : detail::concat(lo, " to ", hi, " ranks per node on ", count.size(), " nodes");
  return detail::concat(per_node, ": --tensor-parallel ", fits, " fits");
}

}  // namespace

std::vector<std::string> gather_node_names(Communicator& world) {
  // The ranks that can share memory with this one are its node (found by init_mpi); the smallest
  // world rank among them identifies the node even where host names repeat.
  int32_t first = node_ranks().first_world_rank;

  // Host names travel as i32 words (DType has no byte type), cut to kHostBytes - 1 characters.
  static_assert(kHostBytes % sizeof(int32_t) == 0);
  std::vector<int32_t> mine(kHostBytes / sizeof(int32_t), 0);
  char host[kHostBytes] = {};
  if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "unknown-host");
  std::memcpy(mine.data(), host, std::strlen(host));
  const size_t n = static_cast<size_t>(world.size());
  std::vector<int32_t> hosts(mine.size() * n), firsts(n);
  world.all_gather(mine.data(), hosts.data(), mine.size(), DType::i32);
  world.all_gather(&first, firsts.data(), 1, DType::i32);

  std::vector<std::string> names(n);
  std::map<std::string, std::set<int32_t>> nodes_of_host;
  for (size_t r = 0; r < n; ++r) {
    const char* h = reinterpret_cast<const char*>(hosts.data() + r * mine.size());
    names[r].assign(h, strnlen(h, kHostBytes - 1));
    nodes_of_host[names[r]].insert(firsts[r]);
  }
  for (size_t r = 0; r < n; ++r)
    if (nodes_of_host[names[r]].size() > 1) names[r] += detail::concat("#", firsts[r]);
  remember_world_nodes(names);  // for the collective deadline's message (which host to drain)
  return names;
}

std::string check_tp_groups_within_nodes(int tp, int dp, const std::vector<std::string>& node_of_world_rank,
                                         bool allow) {
  TESSERA_CHECK(tp >= 1 && dp >= 1 && node_of_world_rank.size() == static_cast<size_t>(tp) * dp,
                "check_tp_groups_within_nodes: ", node_of_world_rank.size(), " node names for tp ", tp, " x dp ", dp);
  constexpr int kGroupsShown = 4;
  std::string groups;
  int spanning = 0;
  for (int g = 0; g < dp; ++g) {
    // The group's ranks by node, nodes in order of their first rank in the group.
    std::vector<std::pair<std::string, std::vector<int>>> by_node;
    std::vector<int> members;
    for (int r = g * tp; r < (g + 1) * tp; ++r) {
      members.push_back(r);
      const std::string& node = node_of_world_rank[static_cast<size_t>(r)];
      auto it = std::find_if(by_node.begin(), by_node.end(), [&](const auto& e) { return e.first == node; });
      if (it == by_node.end()) it = by_node.insert(by_node.end(), {node, {}});
      it->second.push_back(r);
    }
    if (by_node.size() == 1) continue;
    if (++spanning > kGroupsShown) continue;
    std::string where;
    for (const auto& [node, ranks] : by_node)
      where += detail::concat(where.empty() ? "" : "; ", ranks.size() == 1 ? "rank " : "ranks ", rank_list(ranks),
                              " on ", node);
    groups += detail::concat(groups.empty() ? "" : "; ", "tensor-parallel group ", g, " (world ranks ",
                             rank_list(members), ") spans ", by_node.size(), " nodes (", where, ")");
  }
  if (spanning == 0) return "";
  if (spanning > kGroupsShown) groups += detail::concat("; and ", spanning - kGroupsShown, " more groups");
  const std::string text = detail::concat(
      "--tensor-parallel ", tp, ": ", groups,
      ". A tensor-parallel group all-reduces in every layer and belongs inside one node: choose a "
      "--tensor-parallel that divides the ranks per node (",
      ranks_per_node_advice(node_of_world_rank),
      ") and start consecutive ranks on the same node (mpirun --map-by slot, srun --distribution=block)");
  TESSERA_CHECK(allow, text, "; or pass --allow-tp-across-nodes to run this layout anyway (slow)");
  return text;
}

}  // namespace tessera::parallel
