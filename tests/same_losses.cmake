# train_mlp runs of the same model on different grids give the same losses, step by step, up to
# float reduction order (a relative difference of at most TOLERANCE; 0: bit for bit). Inputs:
# REFERENCE and RUN, optionally RUN2 and RUN3 (|-lists: the commands; each RUN is compared with
# REFERENCE), WORK_DIR, TOLERANCE.
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(runs)
foreach(which REFERENCE RUN RUN2 RUN3)
    if(NOT DEFINED ${which})
        continue()
    endif()
    string(REPLACE "|" ";" command "${${which}}")
    string(TOLOWER ${which} name)
    execute_process(COMMAND ${command} --losses ${WORK_DIR}/${name}.txt RESULT_VARIABLE result
                    OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 240)
    if(NOT result EQUAL 0)
        message(FATAL_ERROR "${name} run failed (${result}):\n${out}${err}")
    endif()
    message(STATUS "${name}: ${out}")
    if(NOT name STREQUAL "reference")
        list(APPEND runs ${name})
    endif()
endforeach()
# CMake has no floating-point arithmetic; awk (a required Debian package) compares.
foreach(run ${runs})
    execute_process(
        COMMAND awk -v tol=${TOLERANCE} "
            NR == FNR { ref[FNR] = $1; n = FNR; next }
            { m = FNR; d = $1 - ref[FNR]; if (d < 0) d = -d; s = ref[FNR] < 0 ? -ref[FNR] : ref[FNR];
              r = d / (1 + s); if (r > worst) { worst = r; at = FNR } }
            END { printf \"steps %d and %d, worst relative difference %.3g at step %d\\n\", n, m, worst, at;
                  exit !(n == m && n > 0 && worst <= tol) }"
            ${WORK_DIR}/reference.txt ${WORK_DIR}/${run}.txt
        RESULT_VARIABLE same OUTPUT_VARIABLE summary)
    message(STATUS "${run}: ${summary}")
    if(NOT same EQUAL 0)
        message(FATAL_ERROR "the losses of ${run} differ beyond ${TOLERANCE}: ${summary}")
    endif()
endforeach()
