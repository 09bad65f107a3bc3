// Hashes used across components. Stable forever: values end up in stored
// qualifiers and in shard assignments, so never change an algorithm or seed.
#pragma once

#include <cstdint>
#include <string_view>

namespace seg {

// MurmurHash64A (Austin Appleby), the 64-bit variant Redis's HyperLogLog uses.
uint64_t MurmurHash64A(std::string_view data, uint64_t seed);

// Seed for digests of event ids and contents (qualifier suffix).
inline constexpr uint64_t kEventDigestSeed = 0x5E6E1D5EEDull;

// Shard of a user for per-shard statistics keys: hash(user id) mod shards.
uint32_t UserShard(std::string_view user_id, uint32_t shards);

}  // namespace seg
