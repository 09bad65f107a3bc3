#include "store/internal/key_codec.h"

#include <cstring>

namespace seg::store::internal {
namespace {

// Offset just past the terminator of escaped bytes starting at in[0], or 0.
size_t FindTerminatorEnd(std::string_view in) {
  size_t pos = 0;
  while (true) {
    const void* hit = std::memchr(in.data() + pos, 0, in.size() - pos);
    if (hit == nullptr) return 0;
    size_t z = static_cast<const char*>(hit) - in.data();
    if (z + 1 >= in.size()) return 0;
    uint8_t next = static_cast<uint8_t>(in[z + 1]);
    if (next == 0x01) return z + 2;
    if (next != 0xFF) return 0;
    pos = z + 2;
  }
}

}  // namespace

void AppendEscaped(std::string* out, std::string_view bytes) {
  size_t start = 0;
  while (true) {
    const void* hit = std::memchr(bytes.data() + start, 0, bytes.size() - start);
    if (hit == nullptr) break;
    size_t z = static_cast<const char*>(hit) - bytes.data();
    out->append(bytes.data() + start, z - start);
    out->push_back('\x00');
    out->push_back('\xFF');
    start = z + 1;
  }
  out->append(bytes.data() + start, bytes.size() - start);
  out->push_back('\x00');
  out->push_back('\x01');
}

std::string EncodeRowPrefix(std::string_view row) {
  std::string out;
  out.reserve(row.size() + 2);
  AppendEscaped(&out, row);
  return out;
}

void AppendQualifierAndTimestamp(std::string* out, std::string_view qualifier, int64_t timestamp) {
  AppendEscaped(out, qualifier);
  uint64_t inverted = ~static_cast<uint64_t>(timestamp);
  char buf[8];
  for (int i = 7; i >= 0; --i) {
    buf[i] = static_cast<char>(inverted & 0xFF);
    inverted >>= 8;
  }
  out->append(buf, 8);
}

std::string RowUpperBound(std::string_view row_prefix) {
  std::string out(row_prefix);
  if (!out.empty()) out.back() = '\x02';
  return out;
}

size_t RowPrefixLength(std::string_view key) { return FindTerminatorEnd(key); }

size_t DecodeEscaped(std::string_view in, std::string* out) {
  size_t end = FindTerminatorEnd(in);
  if (end == 0) return 0;
  out->clear();
  // Copy runs between escapes in bulk: time-prefixed qualifiers carry a
  // few 0x00 bytes each, so this is on the read path of every event cell.
  const char* p = in.data();
  const char* stop = in.data() + end - 2;
  while (p < stop) {
    const void* hit = std::memchr(p, 0, stop - p);
    const char* z = hit ? static_cast<const char*>(hit) : stop;
    out->append(p, z - p);
    if (z == stop) break;
    out->push_back('\0');
    p = z + 2;  // skip the 0xFF of the escape
  }
  return end;
}

bool DecodeCellKey(std::string_view key, DecodedKey* out, std::string* scratch) {
  size_t row_end = FindTerminatorEnd(key);
  if (row_end == 0) return false;
  std::string_view rest = key.substr(row_end);
  size_t q_end = FindTerminatorEnd(rest);
  if (q_end == 0 || rest.size() != q_end + 8) return false;
  out->row_prefix = key.substr(0, row_end);
  out->escaped_qualifier = rest.substr(0, q_end);
  std::string_view esc = rest.substr(0, q_end - 2);
  if (std::memchr(esc.data(), 0, esc.size()) == nullptr) {
    out->qualifier = esc;
  } else {
    DecodeEscaped(rest, scratch);
    out->qualifier = *scratch;
  }
  uint64_t inverted = 0;
  for (int i = 0; i < 8; ++i) {
    inverted = (inverted << 8) | static_cast<uint8_t>(rest[q_end + i]);
  }
  out->timestamp = static_cast<int64_t>(~inverted);
  return true;
}

bool DecodeRow(std::string_view key, std::string* row) { return DecodeEscaped(key, row) != 0; }

}  // namespace seg::store::internal
