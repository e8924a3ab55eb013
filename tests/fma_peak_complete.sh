#!/usr/bin/env bash
# Every "% of peak" the benchmarks print divides by the FMA peak of benchmarks/fma_peak.hpp,
# which counts 16 FMA chains an iteration. A count is only right if all 16 run: g++ 12 once
# proved one chain a fixed point (its inputs were constants) and deleted it, so the loop ran 15
# and every peak printed was 16/15 of the FMAs' (fma_peak.hpp). No test can time this; this
# check reads the disassembly instead.
#
# usage: fma_peak_complete.sh OBJDUMP BINARY...
#
# Passes when every binary has fma_chains functions, each with a loop (a backward conditional
# jump) whose packed vector FMAs number a positive multiple of 16, and no loop in them holds
# another number of packed FMAs. Reads GNU objdump's and llvm-objdump's x86 output.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 OBJDUMP BINARY..." >&2
    exit 2
fi
objdump=$1
shift

status=0
for binary in "$@"; do
    # Plain POSIX awk (Debian's default is mawk, without strtonum).
    result=$("$objdump" -d -C --no-show-raw-insn "$binary" | awk '
        function hex(text,    i, value) {
            sub(/^0x/, "", text)
            value = 0
            for (i = 1; i <= length(text); i++)
                value = value * 16 + index("0123456789abcdef", substr(text, i, 1)) - 1
            return value
        }
        function finish() {
            if (!in_chains) return
            functions++
            good = 0
            for (j = 1; j <= jumps; j++) {
                count = 0
                for (f = 1; f <= fmas; f++)
                    if (fma_at[f] >= jump_to[j] && fma_at[f] <= jump_at[j]) count++
                if (count == 0) continue
                if (count % 16 == 0) good++
                else { print "  " substr(name, 1, 120) ": a loop of " count " FMAs"; bad++ }
            }
            if (good == 0) { print "  " substr(name, 1, 120) ": no loop of 16 FMAs"; bad++ }
        }
        /^[0-9a-f]+ <.*>:$/ {
            finish()
            name = $0
            in_chains = $0 ~ /shardnet_bench::fma_chains</
            fmas = 0; jumps = 0
            next
        }
        in_chains && /^ *[0-9a-f]+:/ {
            t = $1; sub(/:$/, "", t); address = hex(t)
            if ($2 ~ /^vfn?m(add|sub)[0-9]+p[sd]$/) fma_at[++fmas] = address
            if ($2 ~ /^j[a-z]+$/ && $2 != "jmp" && $3 ~ /^(0x)?[0-9a-f]+$/) {
                target = hex($3)
                if (target < address) { jump_to[++jumps] = target; jump_at[jumps] = address }
            }
        }
        END {
            finish()
            printf "functions %d bad %d\n", functions, bad
        }')
    summary=$(tail -n 1 <<<"$result")
    read -r _ functions _ bad <<<"$summary"
    if [ "$functions" -eq 0 ]; then
        echo "$binary: no shardnet_bench::fma_chains function found" >&2
        status=1
    elif [ "$bad" -ne 0 ]; then
        echo "$binary: fma_chains does not run the FMAs it counts:" >&2
        head -n -1 <<<"$result" >&2
        status=1
    else
        echo "$binary: $functions fma_chains functions, every loop a multiple of 16 FMAs"
    fi
done
exit $status
