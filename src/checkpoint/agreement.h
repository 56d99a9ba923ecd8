// Collective error handling for checkpoint phases: a phase runs on some ranks (writers, rank 0),
// then every rank learns whether any failed. The failing rank rethrows its own error, the others
// report that one failed, so no rank goes on alone into a collective that would never complete.
#pragma once

#include <exception>
#include <string>

#include "core/error.h"
#include "parallel/communicator.h"

namespace tessera::checkpoint {

// Runs `work`, returning what it threw (or nothing).
template <typename F>
std::exception_ptr attempt(F&& work) {
  try {
    work();
  } catch (...) {
    return std::current_exception();
  }
  return nullptr;
}

inline void agree(parallel::Communicator& world, const std::exception_ptr& error, const std::string& what) {
  int32_t failed = error ? 1 : 0;
  world.all_reduce(&failed, 1, DType::i32, parallel::ReduceOp::max);
  if (error) std::rethrow_exception(error);
  TESSERA_CHECK(failed == 0, what, " failed on another rank (its own error says why)");
}

// agree() after file I/O: ranks that did no I/O wait for those that did, so the wait gets the I/O
// budget (--io-timeout) and a timeout names checkpoint I/O, not a stuck collective.
inline void agree_after_io(parallel::Communicator& world, const std::exception_ptr& error, const std::string& what,
                           double io_timeout_s) {
  parallel::ScopedWaitDeadline deadline(world, io_timeout_s, "checkpoint I/O on other ranks (--io-timeout): " + what);
  agree(world, error, what);
}

}  // namespace tessera::checkpoint
