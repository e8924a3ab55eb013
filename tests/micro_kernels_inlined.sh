#!/usr/bin/env bash
# The GEMM's speed depends on what g++ inlines into the micro-kernels, which no test can time.
# A call from a micro-kernel's depth loop to a function it was meant to inline makes the
# caller store and reload every accumulator around it (all vector registers are caller-saved):
# that is how a g++ 12 inlining decision, flipped by an unrelated change elsewhere in the
# kernel, once made dY·Wᵀ at M = 32, 64 37-53% slower in one binary and not in another
# (kernels/gemm_pack.hpp, transposing_pack_step). This check reads the disassembly instead.
#
# usage: micro_kernels_inlined.sh OBJDUMP BINARY...
#
# Passes when every binary has micro-kernels, among them one with a side job (packing op(B));
# no micro-kernel (nor a function g++ split off one) calls a shardnet or xsimd function; and no
# function at all calls one of those the micro-kernels must inline (the transpose, the side
# jobs, merge_tile, static_for and its steps, the prefetches and prefetch_c_tile): a micro-kernel
# g++ inlined into its caller is checked by that rule. Calls to the C library (memcpy, memset)
# are allowed: an edge tile's merge into C makes them once per micro-tile, after the depth
# loop. Reads GNU objdump's and llvm-objdump's x86 output (call or callq); a disassembly
# without any call is an error, not a pass.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 OBJDUMP BINARY..." >&2
    exit 2
fi
objdump=$1
shift

status=0
for binary in "$@"; do
    # A function's header line: "0000000000026850 <demangled name>:".
    # Its calls: "   26b8d:	call   114e0 <target>" (llvm-objdump: "callq	0x114e0 <target>").
    result=$("$objdump" -d -C --no-show-raw-insn "$binary" | awk '
        /^[0-9a-f]+ <.*>:$/ {
            in_kernel = $0 ~ /shardnet::detail::(micro_kernel<|bf16_[a-z_]*kernel(<.*>)?::run<)/
            if (in_kernel) {
                kernels++
                if ($0 ~ /(transposing|copying|fetching)_pack_step|fetching_side_job/) side_job_kernels++
            }
            name = $0
            next
        }
        /\tcallq?[ \t]/ {
            all_calls++
            target = $0
            sub(/^[^<]*</, "", target)
            # The callee itself, not a template argument of it (a side job names its type).
            must_inline = target ~ /shardnet::detail::(transpose_block_copy<|merge_tile<|static_for<|prefetch(_for_write)?\(|prefetch_c_tile<)/ ||
                          target ~ /(transposing|copying|fetching)_pack_step<[^()]*>::operator\(\)/ ||
                          target ~ /shardnet::detail::(fetching_side_job::operator\(\)|strip_lines::fetch)/ ||
                          target ~ /shardnet::detail::micro_kernel<.*::\{lambda/
            if (must_inline ||
                in_kernel && (index(target, "shardnet::") > 0 || index(target, "xsimd::") > 0)) {
                print "  in " substr(name, 1, 160)
                print "    call to " substr(target, 1, 200)
                calls++
            }
        }
        END {
            printf "kernels %d side_job_kernels %d calls %d all_calls %d\n",
                   kernels, side_job_kernels, calls, all_calls
        }
    ')
    summary=$(tail -n 1 <<<"$result")
    read -r _ kernels _ side_job_kernels _ calls _ all_calls <<<"$summary"
    if [ "$all_calls" -eq 0 ]; then
        echo "FAIL $binary: no call instruction found in its disassembly (an objdump whose output" \
            "this check does not read?)"
        status=1
    elif [ "$kernels" -eq 0 ] || [ "$side_job_kernels" -eq 0 ]; then
        echo "FAIL $binary: expected micro-kernels, among them one with a side job;" \
            "found $kernels and $side_job_kernels (is the binary stripped, or built without the GEMM?)"
        status=1
    elif [ "$calls" -ne 0 ]; then
        echo "FAIL $binary: $calls call(s) to a function the micro-kernels should inline:"
        sed '$d' <<<"$result"
        status=1
    else
        echo "ok $binary: $kernels micro-kernels ($side_job_kernels with a side job)," \
            "no call out of them but to the C library"
    fi
done
exit $status
