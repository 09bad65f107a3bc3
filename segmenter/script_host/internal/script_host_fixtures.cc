#include "segmenter/script_host/internal/script_host_fixtures.h"

#include <arpa/inet.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "common/event_codec.h"

namespace seg::segmenter::internal {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

class Parser {
 public:
  explicit Parser(std::string_view name) : name_(name) {}

  Status Error(const std::string& path, const std::string& what) const {
    return InvalidArgumentError(std::string(name_) + ": " + path + ": " + what);
  }

  Status CheckKeys(const Struct& s, const std::string& path,
                   std::initializer_list<std::string_view> allowed) const {
    for (const auto& [k, v] : s.fields()) {
      if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
        return Error(path, "unknown key '" + k + "'");
      }
    }
    return Status::OK();
  }

  StatusOr<std::string> String(const Value& v, const std::string& path) const {
    if (v.kind_case() != Value::kStringValue) return Error(path, "expected a string");
    return v.string_value();
  }

  StatusOr<int64_t> Int(const Value& v, const std::string& path) const {
    if (v.kind_case() != Value::kNumberValue) return Error(path, "expected a number");
    double d = v.number_value();
    if (std::abs(d) > 9.0e15) return Error(path, "number out of range");
    return static_cast<int64_t>(std::llround(d));
  }

  StatusOr<double> Number(const Value& v, const std::string& path) const {
    if (v.kind_case() != Value::kNumberValue) return Error(path, "expected a number");
    return v.number_value();
  }

  StatusOr<std::vector<std::string>> Strings(const Value& v, const std::string& path) const {
    if (v.kind_case() != Value::kListValue) return Error(path, "expected a list of strings");
    std::vector<std::string> out;
    for (int i = 0; i < v.list_value().values_size(); ++i) {
      SEG_ASSIGN_OR_RETURN(std::string s,
                           String(v.list_value().values(i), path + "[" + std::to_string(i) + "]"));
      out.push_back(std::move(s));
    }
    return out;
  }

  StatusOr<OwnedEvent> Event(const Value& v, const std::string& path, int64_t now_ms) const {
    if (v.kind_case() != Value::kStructValue) return Error(path, "expected an object");
    const Struct& s = v.struct_value();
    SEG_RETURN_IF_ERROR(
        CheckKeys(s, path,
                  {"type", "time_ms", "ago_ms", "ago_minutes", "ago_hours", "ago_days", "url",
                   "referrer", "query", "ip", "user_agent", "source", "event_id", "attributes"}));
    OwnedEvent e;
    auto it = s.fields().find("type");
    if (it == s.fields().end()) return Error(path, "missing 'type'");
    if (it->second.kind_case() == Value::kNumberValue) {
      SEG_ASSIGN_OR_RETURN(int64_t code, Int(it->second, path + ".type"));
      e.type = static_cast<int32_t>(code);
    } else {
      SEG_ASSIGN_OR_RETURN(std::string t, String(it->second, path + ".type"));
      e.type = EventTypeFromName(t);
      if (e.type < 0) return Error(path + ".type", "unknown event type '" + t + "'");
    }
    int times = 0;
    e.time_ms = now_ms;
    struct Rel {
      const char* key;
      double unit_ms;
    };
    for (Rel rel : {Rel{"ago_ms", 1}, Rel{"ago_minutes", 60e3}, Rel{"ago_hours", 3600e3},
                    Rel{"ago_days", 86400e3}}) {
      auto r = s.fields().find(rel.key);
      if (r == s.fields().end()) continue;
      SEG_ASSIGN_OR_RETURN(double ago, Number(r->second, path + "." + rel.key));
      e.time_ms = now_ms - static_cast<int64_t>(std::llround(ago * rel.unit_ms));
      ++times;
    }
    if (auto t = s.fields().find("time_ms"); t != s.fields().end()) {
      SEG_ASSIGN_OR_RETURN(e.time_ms, Int(t->second, path + ".time_ms"));
      ++times;
    }
    if (times != 1) return Error(path, "give exactly one of time_ms, ago_ms/minutes/hours/days");
    struct Field {
      const char* key;
      std::string* out;
    };
    for (Field f : {Field{"url", &e.url}, Field{"referrer", &e.referrer}, Field{"query", &e.query},
                    Field{"user_agent", &e.user_agent}, Field{"source", &e.source},
                    Field{"event_id", &e.event_id}}) {
      auto r = s.fields().find(f.key);
      if (r == s.fields().end()) continue;
      SEG_ASSIGN_OR_RETURN(*f.out, String(r->second, path + "." + f.key));
    }
    if (auto r = s.fields().find("ip"); r != s.fields().end()) {
      SEG_ASSIGN_OR_RETURN(std::string ip, String(r->second, path + ".ip"));
      in_addr addr{};
      if (inet_pton(AF_INET, ip.c_str(), &addr) != 1) return Error(path + ".ip", "not IPv4");
      e.ipv4 = ntohl(addr.s_addr);
    }
    if (auto r = s.fields().find("attributes"); r != s.fields().end()) {
      if (r->second.kind_case() != Value::kStructValue) {
        return Error(path + ".attributes", "expected an object");
      }
      // Struct is a map: sort for a stable order.
      std::vector<std::pair<std::string, std::string>> attrs;
      for (const auto& [k, av] : r->second.struct_value().fields()) {
        SEG_ASSIGN_OR_RETURN(std::string value, String(av, path + ".attributes." + k));
        attrs.emplace_back(k, std::move(value));
      }
      std::sort(attrs.begin(), attrs.end());
      e.attributes = std::move(attrs);
    }
    return e;
  }

 private:
  std::string_view name_;
};

}  // namespace

EventView OwnedEvent::View() const {
  EventView v;
  v.time_ms = time_ms;
  v.type = type;
  v.url = url;
  v.referrer = referrer;
  v.ipv4 = ipv4;
  v.user_agent = user_agent;
  v.search_query = query;
  v.event_id = event_id;
  v.source = source;
  for (const auto& [k, val] : attributes) v.attributes.emplace_back(k, val);
  return v;
}

int32_t EventTypeFromName(std::string_view name) { return seg::EventTypeFromName(name); }

StatusOr<ScriptFixture> ParseScriptFixture(std::string_view json, std::string_view name) {
  Parser p(name);
  Struct root;
  auto st = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &root);
  if (!st.ok()) return p.Error("$", "invalid JSON: " + std::string(st.message()));
  SEG_RETURN_IF_ERROR(p.CheckKeys(root, "$", {"script", "now_ms", "cases", "description"}));
  ScriptFixture fx;
  fx.file = std::string(name);
  fx.script = std::filesystem::path(std::string(name)).stem().string();
  if (auto it = root.fields().find("script"); it != root.fields().end()) {
    SEG_ASSIGN_OR_RETURN(fx.script, p.String(it->second, "$.script"));
  }
  auto now = root.fields().find("now_ms");
  if (now == root.fields().end()) return p.Error("$", "missing now_ms");
  SEG_ASSIGN_OR_RETURN(fx.now_ms, p.Int(now->second, "$.now_ms"));
  auto cases = root.fields().find("cases");
  if (cases == root.fields().end() || cases->second.kind_case() != Value::kListValue) {
    return p.Error("$", "missing list 'cases'");
  }
  const ListValue& list = cases->second.list_value();
  for (int i = 0; i < list.values_size(); ++i) {
    std::string path = "$.cases[" + std::to_string(i) + "]";
    if (list.values(i).kind_case() != Value::kStructValue) return p.Error(path, "not an object");
    const Struct& c = list.values(i).struct_value();
    SEG_RETURN_IF_ERROR(
        p.CheckKeys(c, path, {"name", "user_id", "events", "expect", "expect_error"}));
    FixtureCase fc;
    fc.name = "case " + std::to_string(i);
    if (auto it = c.fields().find("name"); it != c.fields().end()) {
      SEG_ASSIGN_OR_RETURN(fc.name, p.String(it->second, path + ".name"));
    }
    if (auto it = c.fields().find("user_id"); it != c.fields().end()) {
      SEG_ASSIGN_OR_RETURN(fc.user_id, p.String(it->second, path + ".user_id"));
    }
    if (auto it = c.fields().find("events"); it != c.fields().end()) {
      if (it->second.kind_case() != Value::kListValue) return p.Error(path, "events: not a list");
      const ListValue& ev = it->second.list_value();
      for (int k = 0; k < ev.values_size(); ++k) {
        SEG_ASSIGN_OR_RETURN(
            OwnedEvent e,
            p.Event(ev.values(k), path + ".events[" + std::to_string(k) + "]", fx.now_ms));
        fc.events.push_back(std::move(e));
      }
    }
    auto exp = c.fields().find("expect");
    auto err = c.fields().find("expect_error");
    if ((exp == c.fields().end()) == (err == c.fields().end())) {
      return p.Error(path, "give exactly one of expect, expect_error");
    }
    if (exp != c.fields().end()) {
      SEG_ASSIGN_OR_RETURN(fc.expect, p.Strings(exp->second, path + ".expect"));
      std::sort(fc.expect.begin(), fc.expect.end());
    } else {
      SEG_ASSIGN_OR_RETURN(fc.expect_error, p.String(err->second, path + ".expect_error"));
    }
    fx.cases.push_back(std::move(fc));
  }
  return fx;
}

StatusOr<ScriptFixture> LoadScriptFixture(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot read fixture " + path);
  std::stringstream buf;
  buf << in.rdbuf();
  return ParseScriptFixture(buf.str(), std::filesystem::path(path).filename().string());
}

StatusOr<std::vector<CaseOutcome>> RunScriptFixture(ScriptHost& host,
                                                    const ScriptFixture& fixture) {
  bool found = false;
  for (const ScriptInfo& info : host.scripts()) found = found || info.name == fixture.script;
  if (!found) return NotFoundError("no loaded script named '" + fixture.script + "'");
  std::vector<CaseOutcome> outcomes;
  EvaluationResult result;
  for (const FixtureCase& c : fixture.cases) {
    std::vector<EventView> views;
    views.reserve(c.events.size());
    for (const OwnedEvent& e : c.events) views.push_back(e.View());
    EvaluateOptions opts;
    opts.only_script = fixture.script;
    opts.now_ms = fixture.now_ms;
    CaseOutcome& o = outcomes.emplace_back();
    o.name = c.name;
    Status st = host.EvaluateUser(c.user_id, views, opts, &result);
    if (!st.ok()) {
      o.detail = "host error: " + st.ToString();
      continue;
    }
    if (result.scripts.size() != 1) {
      o.detail = "script did not run";
      continue;
    }
    const ScriptResult& r = result.scripts[0];
    auto join = [](const std::vector<std::string>& v) {
      std::string s = "[";
      for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
      return s + "]";
    };
    if (!c.expect_error.empty()) {
      o.passed = r.error_kind != ScriptErrorKind::kNone &&
                 r.error.find(c.expect_error) != std::string::npos;
      if (!o.passed)
        o.detail = "expected error containing '" + c.expect_error + "', got " +
                   (r.error.empty() ? join(r.segments) : "error: " + r.error);
      continue;
    }
    if (r.error_kind != ScriptErrorKind::kNone) {
      o.detail = "error: " + r.error;
      continue;
    }
    o.passed = r.segments == c.expect;
    if (!o.passed) o.detail = "expected " + join(c.expect) + ", got " + join(r.segments);
  }
  return outcomes;
}

}  // namespace seg::segmenter::internal
