# The tiny model must learn the reverse task (a few minutes on one core).
add_executable(train_reverse_test ${CMAKE_CURRENT_SOURCE_DIR}/train_reverse_test.cc)
target_link_libraries(train_reverse_test PRIVATE tessera GTest::gtest GTest::gtest_main)
target_compile_definitions(train_reverse_test PRIVATE TESSERA_CONFIG_DIR="${CMAKE_SOURCE_DIR}/configs")
add_test(NAME train_reverse_tiny COMMAND train_reverse_test --gtest_filter=-*Bf16*)
set_tests_properties(train_reverse_tiny PROPERTIES TIMEOUT 900 LABELS e2e)
# bf16 against fp32: two tiny runs (about 3.5 minutes on one core), alongside the one above.
add_test(NAME train_reverse_tiny_bf16 COMMAND train_reverse_test --gtest_filter=*Bf16*)
set_tests_properties(train_reverse_tiny_bf16 PROPERTIES TIMEOUT 1200 LABELS e2e)

# A resumed run reproduces the uninterrupted one, bit for bit (tp=2 under mpirun).
add_test(NAME train_resume_reproduces_uninterrupted
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/resume.sh ${TESSERA_MPIRUN} --
                 $<TARGET_FILE:tessera-train> ${CMAKE_SOURCE_DIR}/configs/tiny.cfg ${CMAKE_CURRENT_BINARY_DIR}/resume)
set_tests_properties(train_resume_reproduces_uninterrupted PROPERTIES TIMEOUT 300 LABELS "e2e;mpi"
                     ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")

# What protects a run's output: one owner per --out-dir, learning curves continued on resume,
# divergence stopped before anything poisoned is saved (run_safety.sh says how each is checked).
foreach(case lock resume diverge)
  add_test(NAME train_run_safety_${case}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/run_safety.sh ${case} ${TESSERA_MPIRUN} --
                   $<TARGET_FILE:tessera-train> ${CMAKE_SOURCE_DIR}/configs/tiny.cfg
                   ${CMAKE_CURRENT_BINARY_DIR}/run_safety_${case})
  set_tests_properties(train_run_safety_${case} PROPERTIES TIMEOUT 300 LABELS "e2e;mpi"
                       ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
endforeach()
