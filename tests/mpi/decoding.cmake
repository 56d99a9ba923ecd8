# Greedy and beam-search outputs under tp = 2 and tp = 4 against the single-process run.
tessera_add_mpi_test(decoding_np2 2 decoding_test.cc)
tessera_add_mpi_test(decoding_np4 4 decoding_test.cc)
