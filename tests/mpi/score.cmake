# Scoring (tessera-translate --score) against a log-softmax written out by hand at 1 rank, and every
# (tp, dp) layout against the single-process score: (2,1), (1,2) at 2 ranks; (4,1), (2,2), (1,4) at 4.
tessera_add_mpi_test(score_np1 1 score_test.cc)
tessera_add_mpi_test(score_np2 2 score_test.cc)
tessera_add_mpi_test(score_np4 4 score_test.cc)
