// Tensor-parallel groups and nodes: which layouts keep every tp group inside one node, and what
// the start-up error says when one does not.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "parallel/process_topology.h"

namespace tessera::parallel {
namespace {

// `nodes` nodes named n0, n1, ... with `per_node` consecutive ranks each (mpirun --map-by slot).
std::vector<std::string> block_placement(int nodes, int per_node) {
  std::vector<std::string> names;
  for (int n = 0; n < nodes; ++n)
    for (int r = 0; r < per_node; ++r) names.push_back("n" + std::to_string(n));
  return names;
}

// Ranks dealt to nodes in turn (mpirun --map-by node): rank r on node r % nodes.
std::vector<std::string> round_robin_placement(int nodes, int ranks) {
  std::vector<std::string> names;
  for (int r = 0; r < ranks; ++r) names.push_back("n" + std::to_string(r % nodes));
  return names;
}

std::string error_of(int tp, int dp, const std::vector<std::string>& nodes) {
  try {
    check_tp_groups_within_nodes(tp, dp, nodes, /*allow=*/false);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ProcessTopology, GroupsInsideNodesPass) {
  // One node holds everything; 2 nodes x 4 ranks with tp 1, 2, 4; 4 nodes x 8 ranks with tp 8.
  EXPECT_EQ(check_tp_groups_within_nodes(4, 1, block_placement(1, 4), false), "");
  for (int tp : {1, 2, 4}) EXPECT_EQ(check_tp_groups_within_nodes(tp, 8 / tp, block_placement(2, 4), false), "") << tp;
  EXPECT_EQ(check_tp_groups_within_nodes(8, 4, block_placement(4, 8), false), "");
  // tp 1 never spans, whatever the placement.
  EXPECT_EQ(check_tp_groups_within_nodes(1, 6, round_robin_placement(3, 6), false), "");
}

TEST(ProcessTopology, GroupAcrossTwoNodesNamesRanksAndNodes) {
  // 2 nodes x 2 ranks, tp 4: the one group holds ranks 0-1 on n0 and 2-3 on n1.
  const std::string e = error_of(4, 1, block_placement(2, 2));
  EXPECT_NE(e.find("--tensor-parallel 4"), std::string::npos) << e;
  EXPECT_NE(e.find("tensor-parallel group 0 (world ranks 0-3) spans 2 nodes (ranks 0-1 on n0; ranks 2-3 on n1)"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("2 ranks on each of 2 nodes: --tensor-parallel 1, 2 fits"), std::string::npos) << e;
  EXPECT_NE(e.find("--allow-tp-across-nodes"), std::string::npos) << e;
}

TEST(ProcessTopology, RoundRobinPlacementSplitsEveryGroup) {
  // mpirun --map-by node on 2 nodes: ranks 0, 2 on n0 and 1, 3 on n1, so both tp=2 groups span.
  const std::string e = error_of(2, 2, round_robin_placement(2, 4));
  EXPECT_NE(e.find("group 0 (world ranks 0-1) spans 2 nodes (rank 0 on n0; rank 1 on n1)"), std::string::npos) << e;
  EXPECT_NE(e.find("group 1 (world ranks 2-3) spans 2 nodes (rank 2 on n0; rank 3 on n1)"), std::string::npos) << e;
  EXPECT_NE(e.find("start consecutive ranks on the same node"), std::string::npos) << e;
}

TEST(ProcessTopology, OnlyTheSpanningGroupIsNamed) {
  // Nodes of 3 ranks and tp 2: group 0 (ranks 0-1) fits n0, group 1 (ranks 2-3) spans n0 and n1,
  // group 2 (ranks 4-5) fits n1.
  const std::string e = error_of(2, 3, block_placement(2, 3));
  EXPECT_EQ(e.find("group 0 "), std::string::npos) << e;
  EXPECT_NE(e.find("group 1 (world ranks 2-3) spans 2 nodes (rank 2 on n0; rank 3 on n1)"), std::string::npos) << e;
  EXPECT_EQ(e.find("group 2 "), std::string::npos) << e;
  EXPECT_NE(e.find("3 ranks on each of 2 nodes: --tensor-parallel 1, 3 fits"), std::string::npos) << e;
}

TEST(ProcessTopology, ManySpanningGroupsAreSummarised) {
  const std::string e = error_of(2, 8, round_robin_placement(2, 16));
  EXPECT_NE(e.find("group 3 "), std::string::npos) << e;
  EXPECT_EQ(e.find("group 4 "), std::string::npos) << e;
  EXPECT_NE(e.find("and 4 more groups"), std::string::npos) << e;
}

TEST(ProcessTopology, AllowReturnsTheTextInsteadOfThrowing) {
  std::string text;
  EXPECT_NO_THROW(text = check_tp_groups_within_nodes(4, 1, block_placement(2, 2), /*allow=*/true));
  EXPECT_NE(text.find("spans 2 nodes"), std::string::npos) << text;
  EXPECT_EQ(text.find("--allow-tp-across-nodes"), std::string::npos) << text;
}

TEST(ProcessTopology, UnevenNodesAndWrongSizes) {
  // Nodes of 3 and 1 ranks: tp 2 puts ranks 2 and 3 on different nodes; only tp 1 fits both.
  const std::vector<std::string> uneven = {"a", "a", "a", "b"};
  const std::string e = error_of(2, 2, uneven);
  EXPECT_NE(e.find("1 to 3 ranks per node on 2 nodes: --tensor-parallel 1 fits"), std::string::npos) << e;
  EXPECT_THROW(check_tp_groups_within_nodes(2, 2, block_placement(1, 3), false), Error);
}

}  // namespace
}  // namespace tessera::parallel
