// Which node each rank runs on, and whether the tensor-parallel groups fit inside nodes.
//
// A tensor-parallel group all-reduces activations in every layer, forward and backward, so it
// belongs on one node's fast links (NVLink, shared memory); across the network it would set the
// pace of the whole job. The grid places tp groups on consecutive world ranks, so they sit inside
// nodes exactly when the launcher places consecutive ranks on one node and tp divides the ranks
// per node. check_tp_groups_within_nodes tells, from the gathered node names, whether that holds.
#pragma once

#include <string>
#include <vector>

#include "parallel/communicator.h"

namespace tessera::parallel {

// The node of every world rank, indexed by world rank (collective over `world`). Ranks that can
// share memory (MPI_COMM_TYPE_SHARED) are one node, named by its host name; two nodes that report
// the same host name (containers) are told apart by their first world rank ("host#4"). The names
// are also remembered for messages about ranks (world_node, parallel/mpi_runtime.h).
std::vector<std::string> gather_node_names(Communicator& world);

// Checks that every tensor-parallel group (world ranks [g*tp, (g+1)*tp) for g < dp) lies on one
// node. Returns "" when it does. Otherwise the text names each group that spans nodes, with its
// ranks and their nodes, and says what to change; it is thrown as a tessera::Error unless
// `allow` (--allow-tp-across-nodes), in which case it is returned for the caller to warn with.
std::string check_tp_groups_within_nodes(int tp, int dp, const std::vector<std::string>& node_of_world_rank,
                                         bool allow);

}  // namespace tessera::parallel
