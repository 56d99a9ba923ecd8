// How many threads this rank uses for BLAS and its own loops (--threads).
#pragma once

namespace tessera::kernels {

// While alive, BLAS runs single-threaded (for loops that parallelise over many small products).
class SingleThreadedBlas {
 public:
  SingleThreadedBlas();
  ~SingleThreadedBlas();
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int saved_;
};

// Cores on this node divided among the ranks on this node (OMPI_COMM_WORLD_LOCAL_SIZE), at least 1.
int default_threads_per_rank();

}  // namespace tessera::kernels
