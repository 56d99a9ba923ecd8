# Checkpoint resharding: saved in every layout of the world (and by a single process), loaded in
# every other; at 2 ranks (tp 1, 2) and 4 ranks (tp 1, 2, 4).
tessera_add_mpi_test(checkpoint_np2 2 checkpoint_test.cc)
tessera_add_mpi_test(checkpoint_np4 4 checkpoint_test.cc)
