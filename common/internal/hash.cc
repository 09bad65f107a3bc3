#include "common/hash.h"

#include <cstring>

namespace seg {

uint64_t MurmurHash64A(std::string_view data, uint64_t seed) {
  const uint64_t m = 0xc6a4a7935bd1e995ull;
  const int r = 47;
  const size_t len = data.size();
  uint64_t h = seed ^ (len * m);
  const unsigned char* p = reinterpret_cast<const unsigned char*>(data.data());
  const unsigned char* end = p + (len - len % 8);
  for (; p != end; p += 8) {
    uint64_t k;
    std::memcpy(&k, p, 8);  // little-endian machines, as Redis assumes
    k *= m;
    k ^= k >> r;
    k *= m;
    h ^= k;
    h *= m;
  }
  switch (len & 7) {
    case 7:
      h ^= uint64_t(p[6]) << 48;
      [[fallthrough]];
    case 6:
      h ^= uint64_t(p[5]) << 40;
      [[fallthrough]];
    case 5:
      h ^= uint64_t(p[4]) << 32;
      [[fallthrough]];
    case 4:
      h ^= uint64_t(p[3]) << 24;
      [[fallthrough]];
    case 3:
      h ^= uint64_t(p[2]) << 16;
      [[fallthrough]];
    case 2:
      h ^= uint64_t(p[1]) << 8;
      [[fallthrough]];
    case 1:
      h ^= uint64_t(p[0]);
      h *= m;
  }
  h ^= h >> r;
  h *= m;
  h ^= h >> r;
  return h;
}

uint32_t UserShard(std::string_view user_id, uint32_t shards) {
  if (shards <= 1) return 0;
  // A different seed from the HLL's so shard choice and register index are independent.
  return static_cast<uint32_t>(MurmurHash64A(user_id, 0x5A4D) % shards);
}

}  // namespace seg
