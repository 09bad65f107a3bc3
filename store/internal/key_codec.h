// Key encoding of the embedded engine: how an HBase cell address
// (row, qualifier, timestamp) becomes one RocksDB key whose bytewise order
// is HBase's cell order. The family is not in the key: each table:family
// pair is its own RocksDB column family, so it has its own memtables, SST
// files, compaction filter (TTL, versions) and tuning.
//
// The idea
// --------
// HBase orders cells by row (bytewise), then qualifier (bytewise), then
// timestamp, newest first. RocksDB orders keys bytewise. Concatenating
// row + qualifier + timestamp does not work: rows and qualifiers have any
// length and any bytes, so "ab"+"c" and "a"+"bc" collide and a short row
// would interleave with a longer one that extends it ("a" + qualifier "z"
// vs row "aa"). A length prefix fixes the ambiguity but breaks the order
// ("b" would sort before "aa"). So both variable parts are *escaped* and
// *terminated*, an order-preserving code (as in FoundationDB's tuple layer):
//
//   0x00 inside the bytes   -> 0x00 0xFF
//   end of the bytes        -> 0x00 0x01
//
// Why the order holds: comparing two encodings, the first difference is
// either two ordinary bytes (same as raw), an ordinary byte against 0x00
// of an escape or terminator (raw 0x00 sorts first anyway, and "ended"
// sorts first against anything non-zero), or terminator 0x01 against escape
// 0xFF: the shorter raw string (ended) sorts before the one continuing with
// 0x00. All of a row's cells share the row's encoding as a prefix, so a row
// is one contiguous key range, and that prefix is what the prefix bloom
// filter hashes (RowPrefixExtractor), so point reads of absent rows skip
// SST files without touching data blocks.
//
// The timestamp is 8 bytes big-endian of ~ts (bitwise not, ts >= 0), so a
// larger timestamp gives a smaller key: newest version first.
//
// Layout
// ------
//   key = esc(row) 00 01 | esc(qualifier) 00 01 | ~timestamp (8 bytes BE)
//
// Worked example: row "u\x00" (2 bytes), qualifier "q", ts 5
//   75 00 FF 00 01 | 71 00 01 | FF FF FF FF FF FF FF FA
// Row "u" would encode as 75 00 01 ...: 0x01 < 0xFF, so "u" < "u\x00" as in
// raw bytes, and every cell of "u" precedes every cell of "u\x00".
//
// Trade-off: escaping costs 2 bytes per part plus 1 per 0x00 byte inside
// (rare in user ids and in the time-prefixed event qualifiers, where only
// a few high-order bytes of the time are 0x00: +2..3 bytes), against a
// key layout that needs no custom comparator (the bytewise comparator lets
// RocksDB use its fast paths and prefix blooms). Decoding a qualifier
// without 0x00 bytes is a view into the key, no copy.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace seg::store::internal {

// Appends esc(bytes) 00 01.
void AppendEscaped(std::string* out, std::string_view bytes);

// esc(row) 00 01: the prefix shared by all of a row's keys.
std::string EncodeRowPrefix(std::string_view row);

// Appends the full cell key; `out` usually already holds the row prefix.
void AppendQualifierAndTimestamp(std::string* out, std::string_view qualifier, int64_t timestamp);

// The smallest key greater than every key starting with `row_prefix`
// (its last byte, the 0x01 of the terminator, becomes 0x02).
std::string RowUpperBound(std::string_view row_prefix);

// Length of the row prefix (including terminator) at the start of `key`,
// 0 when the key is malformed.
size_t RowPrefixLength(std::string_view key);

// Decodes escaped bytes ending with a terminator at the start of `in`.
// Returns bytes consumed (including terminator), 0 if malformed.
size_t DecodeEscaped(std::string_view in, std::string* out);

struct DecodedKey {
  std::string_view row_prefix;         // escaped row + terminator
  std::string_view escaped_qualifier;  // escaped qualifier + terminator
  std::string_view qualifier;          // raw; into the key or into scratch
  int64_t timestamp = 0;
};

// Splits a cell key. `scratch` holds the qualifier when it needed
// unescaping. False if the key is malformed.
bool DecodeCellKey(std::string_view key, DecodedKey* out, std::string* scratch);

// Decodes the raw row from a key (or a row prefix).
bool DecodeRow(std::string_view key, std::string* row);

}  // namespace seg::store::internal
