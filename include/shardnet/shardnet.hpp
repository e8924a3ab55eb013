// The one include a user needs: every public part of shardnet.
#pragma once

#include "shardnet/version.hpp"

#include "shardnet/core/error.hpp"
#include "shardnet/core/layout.hpp"
#include "shardnet/core/memory.hpp"
#include "shardnet/core/random.hpp"
#include "shardnet/core/settings.hpp"
#include "shardnet/core/shard.hpp"
#include "shardnet/core/tensor.hpp"

#include "shardnet/kernels/gemm.hpp"
#include "shardnet/kernels/gemm_policy.hpp"
// kernels/cblas_gemm.hpp is not included: it needs <cblas.h> and a BLAS to link.

#include "shardnet/comm/agree.hpp"
#include "shardnet/comm/async.hpp"
#include "shardnet/comm/collective_main.hpp"
#include "shardnet/comm/communicator.hpp"
#include "shardnet/comm/local_communicator.hpp"
#include "shardnet/comm/mpi_communicator.hpp"
#include "shardnet/comm/process_grid.hpp"
#include "shardnet/comm/tracing_communicator.hpp"

#include "shardnet/partition/column_split.hpp"
#include "shardnet/partition/partition.hpp"
#include "shardnet/partition/replicated.hpp"
#include "shardnet/partition/row_split.hpp"

#include "shardnet/layers/activation.hpp"
#include "shardnet/layers/dense.hpp"
#include "shardnet/layers/init.hpp"

#include "shardnet/net/conversion.hpp"
#include "shardnet/net/parameter.hpp"
#include "shardnet/net/plan.hpp"
#include "shardnet/net/sequential.hpp"
#include "shardnet/net/visit_layers.hpp"

#include "shardnet/train/cross_entropy.hpp"
#include "shardnet/train/csv.hpp"
#include "shardnet/train/dataset.hpp"
#include "shardnet/train/idx.hpp"
#include "shardnet/train/memory_preflight.hpp"
#include "shardnet/train/mse.hpp"
#include "shardnet/train/optimizer.hpp"
#include "shardnet/train/progress.hpp"
#include "shardnet/train/schedule.hpp"
#include "shardnet/train/shuffle.hpp"
#include "shardnet/train/standardize.hpp"
#include "shardnet/train/synthetic.hpp"
#include "shardnet/train/trainer.hpp"

#include "shardnet/io/bounded_archive.hpp"
#include "shardnet/io/checkpoint.hpp"
#include "shardnet/io/checksum.hpp"
#include "shardnet/io/durable_file.hpp"
#include "shardnet/io/manifest.hpp"
#include "shardnet/io/output_file.hpp"
#include "shardnet/io/shard_file.hpp"
