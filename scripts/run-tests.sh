#!/usr/bin/env bash
# CI: the README's release workflow (build, every test), then the hostile-input subset under
# AddressSanitizer + UndefinedBehaviorSanitizer, then every libFuzzer target for a bounded time
# on its committed seed corpus. Stays small: the sanitize build makes only the test binary,
# the fuzz build only the four loaders. FUZZ_SECONDS (default 20) bounds each fuzz run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

cmake --workflow --preset test

cmake --preset sanitize
cmake --build --preset sanitize --target shardnet_tests
ctest --preset sanitize -L hostile_input

fuzz_seconds=${FUZZ_SECONDS:-20}
cmake -S . -B build/fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSHARDNET_BUILD_TESTS=OFF -DSHARDNET_BUILD_EXAMPLES=OFF -DSHARDNET_BUILD_FUZZERS=ON
cmake --build build/fuzz -j2
# New inputs go to a scratch directory: the committed corpus only changes by hand. Removed even
# when a fuzzer finds a crash and set -e stops the script.
scratch_root=$(mktemp -d)
trap 'rm -rf "${scratch_root}"' EXIT
for target in manifest shard csv idx; do
    scratch="${scratch_root}/${target}"
    mkdir -p "${scratch}"
    echo "fuzz_${target}: ${fuzz_seconds} s"
    build/fuzz/fuzz/fuzz_${target} -max_total_time="${fuzz_seconds}" -rss_limit_mb=2048 \
        -print_final_stats=1 "${scratch}" "fuzz/corpus/${target}"
done
