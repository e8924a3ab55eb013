// Sharded checkpoints over a process grid, in three parts: what a checkpoint holds of a
// network (checkpoint_blocks.hpp), saving (checkpoint_save.hpp) and loading with resharding
// (checkpoint_load.hpp); the directory policy is in checkpoint_directory.hpp.
#pragma once

#include "shardnet/io/checkpoint_blocks.hpp"
#include "shardnet/io/checkpoint_directory.hpp"
#include "shardnet/io/checkpoint_load.hpp"
#include "shardnet/io/checkpoint_save.hpp"
