// Compiles only if shardnet/version.hpp states the version of the CMake package it came with.
#include <shardnet/version.hpp>

#include <string_view>

static_assert(SHARDNET_VERSION_MAJOR == EXPECTED_MAJOR, "version.hpp: major differs from CMake's");
static_assert(SHARDNET_VERSION_MINOR == EXPECTED_MINOR, "version.hpp: minor differs from CMake's");
static_assert(SHARDNET_VERSION_PATCH == EXPECTED_PATCH, "version.hpp: patch differs from CMake's");
static_assert(std::string_view(SHARDNET_VERSION_STRING) == EXPECTED_STRING,
              "version.hpp: SHARDNET_VERSION_STRING differs from CMake's version");
static_assert(SHARDNET_VERSION == EXPECTED_MAJOR * 10000 + EXPECTED_MINOR * 100 + EXPECTED_PATCH);
