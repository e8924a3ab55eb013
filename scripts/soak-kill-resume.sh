#!/usr/bin/env bash
# Soak test of kill-and-resume: many runs of train_mlp killed at random points must all end
# bitwise like one uninterrupted run. The ctest train_mlp_kill_and_resume_* kills once at a
# fixed step; this script tries random ranks, steps and repeated kills, to find the rare
# step where a checkpoint is half written or a resumed state is subtly off.
#
# Not run in CI (it takes minutes). Builds nothing: build train_mlp first, e.g.
#   cmake --preset release && cmake --build build/release --target train_mlp
#   scripts/soak-kill-resume.sh [--cycles N] [--seed S] [--ranks P] [--timeout SEC]
#                               [--work-dir DIR] [TRAIN_MLP]
# TRAIN_MLP defaults to build/release/examples/train_mlp.
#
# What it does: one uninterrupted reference run on P ranks (default 2), then N cycles
# (default 100). Each cycle starts from an empty checkpoint directory, picks 1 to 3 kills at
# increasing steps in [1, total steps - 1], each of a random rank
# (SHARDNET_TEST_KILL=RANK:STEP makes that rank SIGKILL itself after STEP steps), resumes
# with --resume after each kill, and compares the final `checksum:` line (weights and the
# loss sequence) and the `final:` line (without the throughput) with the reference's.
# A kill before the first checkpoint leaves nothing to resume from: that run starts over
# ("resumed at none" in its cycle's line), which must end the same way too.
# Every mpiexec runs under `timeout`, so a hang fails its cycle instead of stalling the soak.
# Prints one line per cycle and "soak: N cycles, N passed, N failed"; exits 1 if any failed.
# The logs of failed cycles stay in the work directory (a temporary one unless --work-dir).
# --seed makes the random choices repeatable: a failing cycle can be replayed.
set -euo pipefail

cycles=100
ranks=2
seed=$RANDOM
run_timeout=120
work_dir=
train_mlp=build/release/examples/train_mlp

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
value() {
    (($# >= 2)) || { echo "soak: option '$1' needs a value (see --help)" >&2; exit 2; }
    echo "$2"
}
while (($#)); do
    case $1 in
        --cycles) cycles=$(value "$@"); shift 2 ;;
        --seed) seed=$(value "$@"); shift 2 ;;
        --ranks) ranks=$(value "$@"); shift 2 ;;
        --timeout) run_timeout=$(value "$@"); shift 2 ;;
        --work-dir) work_dir=$(value "$@"); shift 2 ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "soak: unknown option '$1' (see --help)" >&2; exit 2 ;;
        *) train_mlp=$1; shift ;;
    esac
done
for number in "$cycles" "$ranks" "$seed" "$run_timeout"; do
    [[ $number =~ ^[0-9]+$ ]] || { echo "soak: expected a number, got '$number'" >&2; exit 2; }
done
((ranks >= 1)) || { echo "soak: expected --ranks >= 1, got $ranks" >&2; exit 2; }
[[ -x $train_mlp ]] || { echo "soak: expected an executable train_mlp, got '$train_mlp' (build it first)" >&2; exit 2; }

# The two places to adapt when train_mlp's command line changes: the arguments every run
# shares (the checkpoint directory is added per run), and what a restarted run adds.
checkpoint_every=4
common_args=(--data synthetic --layers 64,256,256,10 --partition column,row,column
             --epochs 2 --train-samples 600 --test-samples 200 --batch 64
             --checkpoint-every "$checkpoint_every" --checksum --no-progress-bar)
resume_args=(--resume)
# OpenMPI refuses root and more ranks than cores unless told; only this script's runs are told.
launcher=(mpiexec --allow-run-as-root --oversubscribe -n "$ranks")

if [[ -z $work_dir ]]; then
    work_dir=$(mktemp -d "${TMPDIR:-/tmp}/soak-kill-resume.XXXXXX")
    cleanup_work_dir=1
else
    mkdir -p "$work_dir"
    cleanup_work_dir=0
fi
RANDOM=$seed
unset SHARDNET_TEST_KILL  # only the runs meant to die get one

# run LOG CHECKPOINT_DIR KILL [ARGS...]: one training job, its output in LOG. KILL is
# RANK:STEP or empty. Sets run_code (the job's exit code), run_timed_out (1 if `timeout`
# stopped it: its own code is ambiguous, 137 is also what a SIGKILLed rank gives) and
# run_resumed_at (the step of its "resumed at step N" line, or empty).
run() {
    local log=$1 dir=$2 kill=$3
    shift 3
    local started=$SECONDS
    run_code=0
    env ${kill:+SHARDNET_TEST_KILL="$kill"} timeout --kill-after=10 "$run_timeout" \
        "${launcher[@]}" "$train_mlp" "${common_args[@]}" --checkpoint-dir "$dir" "$@" \
        >"$log" 2>&1 || run_code=$?
    run_timed_out=$((run_code != 0 && SECONDS - started >= run_timeout))
    run_resumed_at=$(sed -nE 's/^resumed at step ([0-9]+) .*/\1/p' "$log")
}

# The lines that must match the reference: checksum (weights, losses, steps) and final
# without samples_per_s, which is a timing.
summary() {
    grep -E '^checksum: ' "$1" || true
    grep -E '^final: ' "$1" | sed -E 's/ samples_per_s=[0-9]+//' || true
}

echo "soak: $train_mlp on $ranks ranks, $cycles cycles, seed $seed, work dir $work_dir"
reference_log=$work_dir/reference.log
run "$reference_log" "$work_dir/reference-checkpoints" ""
reference=$(summary "$reference_log")
total_steps=$(sed -nE 's/^checksum: .* steps=([0-9]+).*/\1/p' "$reference_log")
if [[ $run_code != 0 || -z $total_steps || $(wc -l <<<"$reference") != 2 ]]; then
    echo "soak: the reference run failed (exit $run_code); its output:" >&2
    cat "$reference_log" >&2
    exit 1
fi
if ((total_steps < 2)); then
    echo "soak: the reference run has $total_steps steps, need at least 2 to kill between" >&2
    exit 1
fi
echo "soak: reference ($total_steps steps): ${reference//$'\n'/ }"

passed=0
failed=0
for ((cycle = 1; cycle <= cycles; ++cycle)); do
    cycle_dir=$work_dir/cycle-$cycle
    rm -rf "$cycle_dir"
    mkdir -p "$cycle_dir/checkpoints"

    # 1 to 3 distinct kill steps in [1, total_steps - 1], increasing: the first draws of a
    # shuffle, sorted. In this shell, not a subshell: bash reseeds RANDOM in subshells, and
    # --seed must replay the same cycles.
    kill_count=$((RANDOM % 3 + 1))
    ((kill_count < total_steps)) || kill_count=$((total_steps - 1))
    candidates=()
    for ((s = 1; s < total_steps; ++s)); do candidates+=("$s"); done
    for ((i = 0; i < kill_count; ++i)); do
        j=$((i + (RANDOM * 32768 + RANDOM) % (${#candidates[@]} - i)))
        swap=${candidates[i]}
        candidates[i]=${candidates[j]}
        candidates[j]=$swap
    done
    mapfile -t steps < <(printf '%s\n' "${candidates[@]:0:kill_count}" | sort -n)

    plan=
    verdict=
    resumes=
    # Runs 0 .. kill_count-1 are killed; run kill_count finishes. Every run but the first
    # resumes, and must resume from the newest checkpoint at or before the previous kill.
    for ((k = 0; k <= kill_count; ++k)); do
        extra=()
        ((k == 0)) || extra=("${resume_args[@]}")
        kill=
        if ((k < kill_count)); then
            kill="$((RANDOM % ranks)):${steps[k]}"
            plan+="${plan:+ }rank${kill%%:*}@${steps[k]}"
        fi
        log=$cycle_dir/run-$k.log
        run "$log" "$cycle_dir/checkpoints" "$kill" "${extra[@]}"
        if ((run_timed_out)); then
            verdict="run $k timed out after ${run_timeout}s"
            break
        fi
        ((k == 0)) || resumes+="${resumes:+ }${run_resumed_at:-none}"
        if ((k == kill_count)) && ((run_code != 0)); then
            verdict="the last run, $k, failed (exit $run_code)"
            break
        fi
        if ((k < kill_count)) && ((run_code == 0)); then
            verdict="run $k, meant to be killed at step ${steps[k]}, finished"
            break
        fi
        if ((k > 0)); then
            expected=$((steps[k - 1] / checkpoint_every * checkpoint_every))
            if ((expected > 0)) && [[ $run_resumed_at != "$expected" ]]; then
                verdict="run $k resumed at step '$run_resumed_at' (exit $run_code), expected $expected"
                break
            fi
        fi
    done
    if [[ -z $verdict ]]; then
        got=$(summary "$log")
        [[ $got == "$reference" ]] || verdict="differs from the reference: ${got//$'\n'/ }"
    fi

    if [[ -z $verdict ]]; then
        ((++passed))
        echo "cycle $cycle/$cycles: kills $plan; resumed at $resumes: ok"
        rm -rf "$cycle_dir"
    else
        ((++failed))
        echo "cycle $cycle/$cycles: kills $plan; resumed at ${resumes:-nothing yet}: FAILED:" \
             "$verdict (logs in $cycle_dir)"
    fi
done

echo "soak: $cycles cycles, $passed passed, $failed failed"
if ((failed == 0)); then
    rm -rf "$work_dir/reference-checkpoints" "$reference_log"
    ((cleanup_work_dir == 0)) || rm -rf "$work_dir"
    exit 0
fi
echo "soak: replay with --seed $seed; logs of failed cycles in $work_dir" >&2
exit 1
