# A checkpoint directory belongs to the run that wrote it. Run A saves checkpoints; run B (another
# learning rate) is refused as a fresh run and as a resume, each time naming the difference; a
# resume of A with more epochs is refused too (its schedule spans the epochs); B with --overwrite
# replaces A's checkpoints and prints its final line at full precision.
# Inputs: RUN (a |-list: mpiexec ... train_mlp and its common arguments), WORK_DIR.
string(REPLACE "|" ";" RUN "${RUN}")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(dir ${WORK_DIR}/checkpoints)

function(run_train expect_ok pattern)
    set(epochs --epochs 2)
    if("${ARGN}" MATCHES "--epochs")
        set(epochs)
    endif()
    execute_process(COMMAND ${RUN} --checkpoint-dir ${dir} --checkpoint-every 5 ${epochs} ${ARGN}
                    RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 120)
    set(all "${out}${err}")
    if(NOT result MATCHES "^[0-9]+$")
        message(FATAL_ERROR "'${ARGN}' did not end by itself (${result}):\n${all}")
    endif()
    if(expect_ok AND NOT result EQUAL 0)
        message(FATAL_ERROR "'${ARGN}' failed (${result}):\n${all}")
    endif()
    if(NOT expect_ok AND result EQUAL 0)
        message(FATAL_ERROR "'${ARGN}' succeeded, expected a refusal:\n${all}")
    endif()
    if(NOT all MATCHES "${pattern}")
        message(FATAL_ERROR "'${ARGN}': the output does not match '${pattern}':\n${all}")
    endif()
endfunction()

run_train(TRUE "final: epochs=2 " --lr 0.01)
file(GLOB a_checkpoints RELATIVE ${dir} ${dir}/step-*)
run_train(FALSE "holds another run's checkpoints .*train_mlp --lr is 0.01 there, 0.001 in this run"
          --lr 0.001)
run_train(FALSE "was written by another run: train_mlp --lr is 0.01 there, 0.001 in this run"
          --lr 0.001 --resume)
run_train(FALSE "holds checkpoints of this same run" --lr 0.01)
run_train(FALSE "was written by another run: train_mlp --epochs is 2 there, 3 in this run"
          --lr 0.01 --resume --epochs 3)
file(GLOB still RELATIVE ${dir} ${dir}/step-*)
if(NOT still STREQUAL a_checkpoints)
    message(FATAL_ERROR "refused runs changed the directory: '${a_checkpoints}' became '${still}'")
endif()
# Full precision: at least six significant digits in the final losses.
run_train(TRUE "final: epochs=2 train_loss=[0-9]\\.[0-9][0-9][0-9][0-9][0-9]" --lr 0.001
          --overwrite)
run_train(TRUE "resumed at step 20 .*final: epochs=2 " --lr 0.001 --resume)
message(STATUS "another run's checkpoints were refused by name and replaced only with --overwrite")
