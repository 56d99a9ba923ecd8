# Every layout against the single-process run: (1,1) at 1 rank; (2,1), (1,2) at 2; (4,1), (2,2), (1,4) at 4.
tessera_add_mpi_test(layout_np1 1 layout_test.cc)
tessera_add_mpi_test(layout_np2 2 layout_test.cc)
tessera_add_mpi_test(layout_np4 4 layout_test.cc)
