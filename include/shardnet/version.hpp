// The library's version, for code that must know which shardnet it was built against.
#pragma once

#define SHARDNET_VERSION_MAJOR 0
#define SHARDNET_VERSION_MINOR 1
#define SHARDNET_VERSION_PATCH 0
/// One number that orders releases: major * 10000 + minor * 100 + patch.
#define SHARDNET_VERSION \
    (SHARDNET_VERSION_MAJOR * 10000 + SHARDNET_VERSION_MINOR * 100 + SHARDNET_VERSION_PATCH)
#define SHARDNET_VERSION_STRING "0.1.0"
