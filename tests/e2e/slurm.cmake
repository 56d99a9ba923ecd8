# launch/train.sbatch under a real SLURM that the test starts on this machine (slurm.sh says how):
# a job runs to the end, a signalled one saves, requeues itself and resumes bit for bit, and a
# short --time stops one at the --time-limit derived from it. Skips (77) when not root or when
# slurm-wlm and munge are missing and cannot be installed. Its three 4-rank jobs run at once.
add_test(NAME slurm_lib_functions
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/slurm.sh functions ${CMAKE_SOURCE_DIR})
set_tests_properties(slurm_lib_functions PROPERTIES TIMEOUT 30 LABELS "e2e;slurm")

add_test(NAME slurm_train_sbatch_requeues_and_resumes
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/slurm.sh jobs ${CMAKE_SOURCE_DIR}
                 $<TARGET_FILE:tessera-train> ${CMAKE_CURRENT_BINARY_DIR}/slurm)
set_tests_properties(slurm_train_sbatch_requeues_and_resumes PROPERTIES
                     TIMEOUT 600 LABELS "e2e;slurm" SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
