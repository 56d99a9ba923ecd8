# TensorBoard's own Python loader (EventAccumulator) reads the event files of TensorBoardWriter:
# tensorboard_events.cc writes a run killed mid-record and resumed at step 3, and the loader must
# skip the partial record and purge the killed run's points after step 3 (valid/loss at 4
# included) at the resumed run's SessionLog START. tensorboard_python exits 77 (skipped) on a
# machine without Python's tensorboard package.
add_executable(tensorboard_events ${CMAKE_CURRENT_SOURCE_DIR}/tensorboard_events.cc)
target_link_libraries(tensorboard_events PRIVATE tessera)
set(TENSORBOARD_TEST_DIR ${CMAKE_CURRENT_BINARY_DIR}/tensorboard_logdir)
add_test(NAME tensorboard_write COMMAND tensorboard_events ${TENSORBOARD_TEST_DIR})
set_tests_properties(tensorboard_write PROPERTIES TIMEOUT 60 LABELS e2e FIXTURES_SETUP tensorboard_events)
add_test(NAME tensorboard_python
         COMMAND python3 ${CMAKE_SOURCE_DIR}/tools/read_tensorboard.py ${TENSORBOARD_TEST_DIR}
                 --expect train/loss=1:7,2:6,3:5,4:16,5:15,6:14,7:13 valid/loss=6:9.25)
set_tests_properties(tensorboard_python PROPERTIES TIMEOUT 120 LABELS e2e SKIP_RETURN_CODE 77
                     FIXTURES_REQUIRED tensorboard_events)
