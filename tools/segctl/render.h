// Rendering for segctl: readable tables, JSON, terminal sparklines and SVG
// charts of the seg-stats replies (proto/stats.proto). Pure functions over
// the reply messages, no I/O except WriteFile, so tests call them directly.
// Thread-safe (no shared state).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "proto/stats.pb.h"

namespace seg::segctl {

namespace v1 = ::seg::stats::v1;

// 1234567.4 -> "1,234,567"; negative and non-finite values print as-is.
std::string FormatCount(double value);

// One estimate as a table row under `label`:
//   label                size    ±95%      95% interval        method
//   cats 2024-01-01..07  12,345  ±196 (1.6%)  [12,149 .. 12,541]  hll
// followed by "  note: ..." when too_uncertain.
std::string RenderEstimateTable(std::string_view label, const v1::Estimate& estimate);

// The series as a table (one row per day) followed by a sparkline line.
std::string RenderSeriesTable(std::string_view segment, const v1::SizeSeriesReply& series);

std::string RenderSegmentsTable(const v1::ListSegmentsReply& reply);
std::string RenderUserTable(const v1::UserSegmentsReply& reply);

// Any reply as JSON (proto field names, defaults printed), one object.
std::string RenderJson(const google::protobuf::Message& message);

// Unicode block sparkline "▁▂▅█", one character per value, scaled from the
// smallest to the largest value (all equal: a flat middle line).
std::string Sparkline(const std::vector<double>& values);

// A standalone SVG line chart of the sizes per day with the 95% interval as
// a shaded band, day labels on the x axis and sizes on the y axis.
std::string RenderSeriesSvg(std::string_view title, const v1::SizeSeriesReply& series,
                            int width = 900, int height = 360);

// Writes `contents` to `path` (truncating). Internal on I/O errors.
Status WriteFile(const std::string& path, std::string_view contents);

}  // namespace seg::segctl
