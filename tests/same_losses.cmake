# Two train_mlp runs of the same model on different grids give the same losses, step by step,
# up to float reduction order (a relative difference of at most TOLERANCE). Inputs: REFERENCE
# and RUN (|-lists: the commands), WORK_DIR, TOLERANCE.
string(REPLACE "|" ";" REFERENCE "${REFERENCE}")
string(REPLACE "|" ";" RUN "${RUN}")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
foreach(which reference run)
    if(which STREQUAL "reference")
        set(command ${REFERENCE})
    else()
        set(command ${RUN})
    endif()
    execute_process(COMMAND ${command} --losses ${WORK_DIR}/${which}.txt RESULT_VARIABLE result
                    OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 240)
    if(NOT result EQUAL 0)
        message(FATAL_ERROR "${which} run failed (${result}):\n${out}${err}")
    endif()
    message(STATUS "${which}: ${out}")
endforeach()
# CMake has no floating-point arithmetic; awk (a required Debian package) compares.
execute_process(
    COMMAND awk -v tol=${TOLERANCE} "
        NR == FNR { ref[FNR] = $1; n = FNR; next }
        { m = FNR; d = $1 - ref[FNR]; if (d < 0) d = -d; s = ref[FNR] < 0 ? -ref[FNR] : ref[FNR];
          r = d / (1 + s); if (r > worst) { worst = r; at = FNR } }
        END { printf \"steps %d and %d, worst relative difference %.3g at step %d\\n\", n, m, worst, at;
              exit !(n == m && n > 0 && worst <= tol) }"
        ${WORK_DIR}/reference.txt ${WORK_DIR}/run.txt
    RESULT_VARIABLE same OUTPUT_VARIABLE summary)
message(STATUS "${summary}")
if(NOT same EQUAL 0)
    message(FATAL_ERROR "the losses differ beyond ${TOLERANCE}: ${summary}")
endif()
