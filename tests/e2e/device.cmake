# --device cuda trains on a GPU, or stops at start-up with a clear error where there is none.
add_test(NAME train_device_cuda
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/device_cuda.sh $<TARGET_FILE:tessera-train>
                 $<TARGET_FILE:tessera-bench> ${CMAKE_SOURCE_DIR}/configs/tiny.cfg ${CMAKE_CURRENT_BINARY_DIR}/device_cuda)
set_tests_properties(train_device_cuda PROPERTIES TIMEOUT 120 LABELS e2e)
