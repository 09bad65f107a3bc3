#include "tools/segctl/render.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace seg::segctl {
namespace {

std::string Pad(std::string_view s, size_t width) {
  std::string out(s);
  // Count code points, not bytes, so UTF-8 labels line up.
  size_t chars = 0;
  for (unsigned char c : out) chars += (c & 0xC0) != 0x80;
  if (chars < width) out.append(width - chars, ' ');
  return out;
}

std::string Percent(double part, double whole) {
  if (whole <= 0 || !std::isfinite(part / whole)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f%%", 100.0 * part / whole);
  return buf;
}

std::string EscapeXml(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

struct Columns {
  std::string label, size, pm, interval, method;
};

std::string RenderRows(const std::vector<Columns>& rows) {
  size_t w[5] = {0, 0, 0, 0, 0};
  auto width = [](const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
  };
  for (const auto& r : rows) {
    w[0] = std::max(w[0], width(r.label));
    w[1] = std::max(w[1], width(r.size));
    w[2] = std::max(w[2], width(r.pm));
    w[3] = std::max(w[3], width(r.interval));
    w[4] = std::max(w[4], width(r.method));
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line = Pad(r.label, w[0]) + "  " +
                       std::string(w[1] - std::min(w[1], width(r.size)), ' ') + r.size + "  " +
                       Pad(r.pm, w[2]) + "  " + Pad(r.interval, w[3]) + "  " + r.method;
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

Columns EstimateColumns(std::string_view label, const v1::Estimate& e) {
  double half = (e.ci95_high() - e.ci95_low()) / 2;
  return Columns{std::string(label), FormatCount(e.value()),
                 "±" + FormatCount(half) + " (" + Percent(half, e.value()) + ")",
                 "[" + FormatCount(e.ci95_low()) + " .. " + FormatCount(e.ci95_high()) + "]",
                 e.method() + (e.too_uncertain() ? " (too uncertain)" : "")};
}

}  // namespace

std::string FormatCount(double value) {
  if (!std::isfinite(value)) return std::to_string(value);
  bool negative = value < 0;
  unsigned long long v = static_cast<unsigned long long>(std::llround(std::fabs(value)));
  std::string digits = std::to_string(v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return negative ? "-" + out : out;
}

std::string RenderEstimateTable(std::string_view label, const v1::Estimate& estimate) {
  std::vector<Columns> rows;
  rows.push_back({"", "size", "±95%", "95% interval", "method"});
  rows.push_back(EstimateColumns(label, estimate));
  std::string out = RenderRows(rows);
  if (!estimate.note().empty()) out += "note: " + estimate.note() + "\n";
  return out;
}

std::string RenderSeriesTable(std::string_view segment, const v1::SizeSeriesReply& series) {
  std::vector<Columns> rows;
  rows.push_back({"day", "size", "±95%", "95% interval", "method"});
  std::vector<double> values;
  for (const auto& p : series.points()) {
    rows.push_back(EstimateColumns(p.day(), p.estimate()));
    values.push_back(p.estimate().value());
  }
  std::string out = RenderRows(rows);
  if (!values.empty()) {
    auto [lo, hi] = std::minmax_element(values.begin(), values.end());
    out += std::string(segment) + "  " + Sparkline(values) + "  min " + FormatCount(*lo) +
           ", max " + FormatCount(*hi) + "\n";
  }
  return out;
}

std::string RenderSegmentsTable(const v1::ListSegmentsReply& reply) {
  std::vector<Columns> rows;
  rows.push_back({"segment", "today", "±95%", "script", ""});
  for (const auto& s : reply.segments()) {
    Columns c = EstimateColumns(s.segment(), s.today());
    std::string script = s.script().empty() ? "-" : s.script();
    if (!s.script_version().empty()) script += "@" + s.script_version();
    rows.push_back({c.label, c.size, c.pm, script, ""});
  }
  std::string out = RenderRows(rows);
  out += std::to_string(reply.segments_size()) + " segment(s)\n";
  return out;
}

std::string RenderUserTable(const v1::UserSegmentsReply& reply) {
  std::ostringstream out;
  out << "user:               " << reply.user_id() << "\n";
  out << "segments:           ";
  if (reply.segments().empty()) out << "(none)";
  for (int i = 0; i < reply.segments_size(); ++i) out << (i ? ", " : "") << reply.segments(i);
  out << "\n";
  out << "script set version: "
      << (reply.script_set_version().empty() ? "-" : reply.script_set_version()) << "\n";
  auto when = [](int64_t ms) -> std::string {
    if (ms <= 0) return "-";
    time_t secs = static_cast<time_t>(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char buf[64];
    std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
    return buf;
  };
  out << "segmented at:       " << when(reply.segmented_at_ms()) << "\n";
  out << "data watermark:     " << when(reply.data_watermark_ms()) << "\n";
  return out.str();
}

std::string RenderJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) return "{\"error\": \"json rendering failed\"}";
  return out;
}

std::string Sparkline(const std::vector<double>& values) {
  static const char* kBlocks[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  if (values.empty()) return "";
  auto [lo_it, hi_it] = std::minmax_element(values.begin(), values.end());
  double lo = *lo_it, hi = *hi_it;
  std::string out;
  for (double v : values) {
    int level = 3;
    if (hi > lo) level = static_cast<int>(std::lround((v - lo) / (hi - lo) * 7));
    out += kBlocks[std::clamp(level, 0, 7)];
  }
  return out;
}

std::string RenderSeriesSvg(std::string_view title, const v1::SizeSeriesReply& series, int width,
                            int height) {
  const double left = 80, right = 20, top = 40, bottom = 60;
  const double plot_w = width - left - right, plot_h = height - top - bottom;
  const int n = series.points_size();
  double ymax = 0;
  for (const auto& p : series.points()) {
    ymax = std::max({ymax, p.estimate().ci95_high(), p.estimate().value()});
  }
  if (ymax <= 0) ymax = 1;
  ymax *= 1.05;
  auto x = [&](int i) { return left + (n <= 1 ? plot_w / 2 : plot_w * i / (n - 1)); };
  auto y = [&](double v) { return top + plot_h * (1 - std::max(0.0, v) / ymax); };
  char buf[256];
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
      << "\" viewBox=\"0 0 " << width << " " << height
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg << "<text x=\"" << left << "\" y=\"24\" font-size=\"16\">" << EscapeXml(title) << "</text>\n";
  // Y grid and labels: 5 ticks.
  for (int t = 0; t <= 4; ++t) {
    double v = ymax * t / 4;
    std::snprintf(buf, sizeof(buf),
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", left,
                  y(v), left + plot_w, y(v));
    svg << buf;
    std::snprintf(buf, sizeof(buf), "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", left - 6,
                  y(v) + 4);
    svg << buf << FormatCount(v) << "</text>\n";
  }
  if (n > 0) {
    // Interval band: upper edge left to right, lower edge back.
    svg << "<polygon class=\"ci95\" fill=\"#4a90d9\" fill-opacity=\"0.25\" stroke=\"none\" "
           "points=\"";
    for (int i = 0; i < n; ++i) {
      std::snprintf(buf, sizeof(buf), "%.1f,%.1f ", x(i),
                    y(series.points(i).estimate().ci95_high()));
      svg << buf;
    }
    for (int i = n - 1; i >= 0; --i) {
      std::snprintf(buf, sizeof(buf), "%.1f,%.1f ", x(i),
                    y(series.points(i).estimate().ci95_low()));
      svg << buf;
    }
    svg << "\"/>\n";
    svg << "<polyline class=\"size\" fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"2\" points=\"";
    for (int i = 0; i < n; ++i) {
      std::snprintf(buf, sizeof(buf), "%.1f,%.1f ", x(i), y(series.points(i).estimate().value()));
      svg << buf;
    }
    svg << "\"/>\n";
    for (int i = 0; i < n; ++i) {
      std::snprintf(buf, sizeof(buf), "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"#1f5fa8\">",
                    x(i), y(series.points(i).estimate().value()));
      svg << buf << "<title>" << EscapeXml(series.points(i).day()) << ": "
          << FormatCount(series.points(i).estimate().value()) << "</title></circle>\n";
    }
    // X labels: at most ~8, always the first and last day.
    int step = std::max(1, (n + 7) / 8);
    for (int i = 0; i < n; ++i) {
      if (i % step != 0 && i != n - 1) continue;
      std::snprintf(buf, sizeof(buf), "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", x(i),
                    top + plot_h + 18);
      svg << buf << EscapeXml(series.points(i).day()) << "</text>\n";
    }
  }
  std::snprintf(buf, sizeof(buf),
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", left,
                top + plot_h, left + plot_w, top + plot_h);
  svg << buf;
  svg << "<text x=\"" << left << "\" y=\"" << height - 12
      << "\" fill=\"#555\">line: estimated unique users per day; band: 95% interval</text>\n";
  svg << "</svg>\n";
  return svg.str();
}

Status WriteFile(const std::string& path, std::string_view contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return InternalError("cannot open " + path + " for writing");
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  out.close();
  if (!out) return InternalError("cannot write " + path);
  return Status::OK();
}

}  // namespace seg::segctl
