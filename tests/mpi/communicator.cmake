# Communicator and process-grid tests at 2, 3 and 4 ranks (3 exercises odd group sizes).
tessera_add_mpi_test(communicator_np2 2 communicator_test.cc)
tessera_add_mpi_test(communicator_np3 3 communicator_test.cc)
tessera_add_mpi_test(communicator_np4 4 communicator_test.cc)
