// The layout table's pieces that need no MPI: CPU lists and the table's columns.
#include <gtest/gtest.h>

#include "train/rank_layout.h"

namespace tessera::train {
namespace {

TEST(RankLayout, CpuListsAreRanges) {
  EXPECT_EQ(cpu_list({0, 1, 2, 3}), "0-3");
  EXPECT_EQ(cpu_list({0, 2, 3, 4, 8}), "0,2-4,8");
  EXPECT_EQ(cpu_list({5}), "5");
  EXPECT_EQ(cpu_list({}), "?");
}

TEST(RankLayout, TableHasOneAlignedRowPerRank) {
  const std::string table = rank_layout_table(
      {{0, 0, 0, 0, 4, "node-a", "0-3"}, {1, 1, 1, 0, 4, "node-a", "4-7"}, {2, 0, 0, 1, 4, "long-host-b", "0-3"}});
  EXPECT_EQ(table,
            "world  host         local  tp  dp  threads  cpus\n"
            "    0  node-a           0   0   0        4  0-3\n"
            "    1  node-a           1   1   0        4  4-7\n"
            "    2  long-host-b      0   0   1        4  0-3\n");
}

}  // namespace
}  // namespace tessera::train
