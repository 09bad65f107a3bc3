// Day arithmetic for the statistics keys: yyyymmdd integers, UTC, via
// Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian).
#include <cstdio>
#include <string>

#include "stats/writer/stats_writer.h"

namespace seg::stats {
namespace {

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned DaysInMonth(int64_t y, unsigned m) {
  static const unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

}  // namespace

Day DayFromUnixMs(int64_t unix_ms) {
  int64_t days = unix_ms >= 0 ? unix_ms / 86400000 : -((-unix_ms + 86399999) / 86400000);
  return EpochDaysToDay(days);
}

int64_t DayToEpochDays(Day day) { return DaysFromCivil(day / 10000, (day / 100) % 100, day % 100); }

Day EpochDaysToDay(int64_t epoch_days) {
  int64_t y;
  unsigned m, d;
  CivilFromDays(epoch_days, &y, &m, &d);
  return static_cast<Day>(y * 10000 + m * 100 + d);
}

StatusOr<Day> ParseDay(std::string_view text) {
  std::string digits;
  if (text.size() == 10 && text[4] == '-' && text[7] == '-') {
    digits = std::string(text.substr(0, 4)) + std::string(text.substr(5, 2)) +
             std::string(text.substr(8, 2));
  } else if (text.size() == 8) {
    digits = std::string(text);
  } else {
    return InvalidArgumentError("bad day '" + std::string(text) + "': expected YYYY-MM-DD");
  }
  for (char c : digits) {
    if (c < '0' || c > '9') {
      return InvalidArgumentError("bad day '" + std::string(text) + "': expected YYYY-MM-DD");
    }
  }
  int64_t y = std::stoll(digits.substr(0, 4));
  unsigned m = static_cast<unsigned>(std::stoul(digits.substr(4, 2)));
  unsigned d = static_cast<unsigned>(std::stoul(digits.substr(6, 2)));
  if (y < 1970 || m < 1 || m > 12 || d < 1 || d > DaysInMonth(y, m)) {
    return InvalidArgumentError("bad day '" + std::string(text) + "': no such calendar day");
  }
  return static_cast<Day>(y * 10000 + m * 100 + d);
}

std::string FormatDay(Day day) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%04u-%02u-%02u", day / 10000, (day / 100) % 100, day % 100);
  return buf;
}

std::string HllKey(std::string_view prefix, uint32_t shard, std::string_view segment, Day day) {
  std::string key;
  key.reserve(prefix.size() + segment.size() + 24);
  key.append(prefix).append(":{").append(std::to_string(shard)).append("}:");
  key.append(segment).append(":").append(std::to_string(day));
  return key;
}

}  // namespace seg::stats
