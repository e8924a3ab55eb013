// The benchmarks' FMA peak (benchmarks/fma_peak.hpp) built as bench_gemm and bench_mlp build it,
// for tests/fma_peak_complete.sh to read from the disassembly: the test only disassembles it.
// Run with an argument, it prints the peaks.
#include <cstdio>

#include "fma_peak.hpp"

int main(int argc, char**) {
    if (argc < 2) return 0;
    std::printf("float %.1f GFLOP/s (now %.1f), double %.1f GFLOP/s (now %.1f)\n",
                shardnet_bench::fma_peak_gflops<float>(), shardnet_bench::fma_gflops_now<float>(),
                shardnet_bench::fma_peak_gflops<double>(),
                shardnet_bench::fma_gflops_now<double>());
}
