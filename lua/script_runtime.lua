-- Segment script runtime: the sandbox, the `segment_script` contract and the
-- helper library that segment scripts see. Loaded once per Lua state by the
-- C++ script host (segmenter/script_host/internal/lua_state.cc), which embeds this file
-- at build time. Trusted code: it may use the FFI; scripts may not.
--
-- What scripts see (the segment_script contract, the helpers of `user`,
-- filter keys, event tables, sandbox globals and limits) is documented once,
-- in docs/sdk/README.md: keep it in step with this file.
--
-- Explain: when the host sets explain, every helper records the events it
-- matched (FfiEvent.index) so `segtool explain` can show the deciding events.

local HOST = ...
local ffi = require("ffi")
local bit = require("bit")

local band, bor, lshift, rshift = bit.band, bit.bor, bit.lshift, bit.rshift
local type, pairs, ipairs, error, tostring, tonumber = type, pairs, ipairs, error, tostring, tonumber
local select, setmetatable, rawget, pcall, xpcall, unpack = select, setmetatable, rawget, pcall, xpcall, unpack
local getmetatable, rawequal, next, assert = getmetatable, rawequal, next, assert
local loadstring, setfenv, package = loadstring, setfenv, package
local floor = math.floor
local s_lower, s_gsub, s_rep, s_find, s_match, s_format, s_byte =
  string.lower, string.gsub, string.rep, string.find, string.match, string.format, string.byte
local s_gmatch, s_sub = string.gmatch, string.sub
local ffi_string = ffi.string

ffi.cdef[[
typedef struct seg_event {
  double time_ms;
  int32_t type;
  uint32_t ipv4;
  const char* url;
  int32_t url_len;
  int32_t host_off;
  int32_t host_len;
  int32_t path_off;
  int32_t path_len;
  int32_t query_len;
  const char* query;
  int32_t attr_begin;
  int32_t attr_end;
  int32_t index;
  int32_t pad;
} seg_event;
typedef struct seg_text { const char* ptr; int64_t len; } seg_text;
typedef struct seg_event_raw {
  seg_text url, referrer, user_agent, query, source, event_id;
} seg_event_raw;
typedef struct seg_attr {
  const char* key;
  int32_t key_len;
  int32_t value_len;
  const char* value;
} seg_attr;
typedef struct seg_user {
  const seg_event* ev;
  const seg_event_raw* raw;
  const seg_attr* attrs;
  const int32_t* by_type;
  int32_t type_begin[10];
  int32_t n;
  int32_t explain;
  double now_ms;
  const char* id;
  int64_t id_len;
  int32_t* out;
  int32_t out_cap;
  int32_t matched_n;
  int32_t* matched;
  int32_t matched_cap;
  int32_t scratch_cap;
  int32_t* scratch;
  void* host_data;
  int32_t opaque;
  int32_t pad2;
} seg_user;
typedef struct seg_filter {
  int32_t typemask;
  int32_t single_type;
  double lo_ms;
  double hi_ms;
  double within_ms;
  double older_ms;
  int32_t host, url, path, query, query_all, text, source;
  int32_t attr_n;
  int32_t attr_key[8];
  int32_t attr_vals[8];
  int32_t net_n;
  uint32_t net[8];
  uint32_t mask[8];
  int32_t pad;
} seg_filter;
typedef struct seg_budget seg_budget;
]]

local MATCH_T = "int32_t (*)(const char*, int32_t, const char*, int32_t)"
local U = ffi.cast("seg_user*", HOST.user)
local C_equals = ffi.cast(MATCH_T, HOST.equals)
local C_budget_slow = ffi.cast("int32_t (*)(seg_budget*)", HOST.budget_slow)
local BUDGET = ffi.cast("seg_budget*", HOST.budget)
local C_needles = ffi.cast("int32_t (*)(void*, const char**, const int32_t*, int32_t)", HOST.needles)
local C_scan = ffi.cast("int32_t (*)(void*, seg_user*, const seg_filter*, int32_t)", HOST.scan)
local C_distinct = ffi.cast("int32_t (*)(seg_user*, int32_t)", HOST.distinct)
local C_raw = ffi.cast("const seg_event_raw* (*)(seg_user*, int32_t)", HOST.event_raw)
local SCAN_CTX = ffi.cast("void*", HOST.scan_ctx)
local C_aborting = HOST.aborting        -- lua_CFunction: true while a call is being aborted
local MAX_STRING = HOST.max_string_bytes

-- Event type name -> code, from proto/events.proto (the host builds it from
-- the generated descriptor: common/event_codec.h EventTypes()).
local TYPES = HOST.types
local TYPE_NAMES = {}
for k, v in pairs(TYPES) do TYPE_NAMES[v] = k end

local MS_MINUTE, MS_HOUR, MS_DAY = 60000, 3600000, 86400000

---------------------------------------------------------------------------
-- Lower-casing of needles: ASCII plus Cyrillic А-Я, Ё (UTF-8).
local function cyr_lower(c)
  local b = s_byte(c, 2)
  if b == 0x81 then return "\209\145" end                  -- Ё -> ё
  if b >= 0x90 and b <= 0x9F then return "\208" .. string.char(b + 0x20) end  -- А-П
  if b >= 0xA0 and b <= 0xAF then return "\209" .. string.char(b - 0x20) end  -- Р-Я
  return c
end
-- Results are cached by the (interned) input: scripts lower the same event
-- text in loops (car_older_than_3_years: once per needle), and every
-- Cyrillic string takes the gsub path.
local lower_cache, lower_n = {}, 0
local function lower(s)
  local r = lower_cache[s]
  if r then return r end
  r = s_lower(s)
  if s_find(r, "\208", 1, true) then r = s_gsub(r, "\208[\129\144-\175]", cyr_lower) end
  if type(s) == "string" and #s <= 256 then
    if lower_n >= 4096 then lower_cache, lower_n = {}, 0 end
    lower_n = lower_n + 1
    lower_cache[s] = r
  end
  return r
end

---------------------------------------------------------------------------
-- Filters: compiled into a seg_filter (lua_abi.h FfiFilter) that the host's
-- seg_scan evaluates in C++; see segmenter/script_host/internal/event_index.h.

local COMPILED = setmetatable({}, { __mode = "k" })  -- the compiled filters
local FILTER_MT = { __metatable = false }           -- hidden from scripts
local MAX_ATTRS, MAX_NETS = 8, 8
local SCAN_REVERSE, SCAN_STOP, SCAN_COLLECT, SCAN_RECORD, SCAN_UNION = 1, 2, 4, 8, 16

local function strlist(v, key)
  if type(v) == "string" then return { lower(v) } end
  if type(v) ~= "table" then error("filter key '" .. key .. "' must be a string or a list of strings", 4) end
  local out = {}
  for i = 1, #v do
    local s = v[i]
    if type(s) ~= "string" then error("filter key '" .. key .. "' must hold strings", 4) end
    out[i] = lower(s)
  end
  return out
end

-- Registers a list of strings with the host; returns its id. The argument
-- arrays are reused (filters written inline in evaluate() compile per call).
local needle_cap = 16
local needle_ptrs = ffi.new("const char*[?]", needle_cap)
local needle_lens = ffi.new("int32_t[?]", needle_cap)
local function needles(list)
  local n = #list
  if n > needle_cap then
    needle_cap = n
    needle_ptrs = ffi.new("const char*[?]", n)
    needle_lens = ffi.new("int32_t[?]", n)
  end
  for i = 1, n do
    needle_ptrs[i - 1] = list[i]
    needle_lens[i - 1] = #list[i]
  end
  local id = C_needles(SCAN_CTX, needle_ptrs, needle_lens, n)
  if id < 0 then error("too many distinct filter lists: build filters once with filter{...}", 4) end
  return id
end

-- Ids of one-string needle lists by the string as written (lower-cased for
-- text keys, verbatim for attr keys and values): an inline filter's
-- `host = "ngs.ru"` or attr key costs one table lookup.
local single_ids, single_n = { [true] = {}, [false] = {} }, 0
local function single_needle(s, lowered)
  local cache = single_ids[lowered]
  local id = cache[s]
  if id then return id end
  id = needles({ lowered and lower(s) or s })
  if single_n >= 4096 then
    single_ids, single_n = { [true] = {}, [false] = {} }, 0
    cache = single_ids[lowered]
  end
  single_n = single_n + 1
  cache[s] = id
  return id
end

local function num(v, key)
  if type(v) ~= "number" then error("filter key '" .. key .. "' must be a number", 4) end
  return v
end

local function parse_cidr(s)
  if type(s) ~= "string" then error("ip_in: CIDRs must be strings", 5) end
  local a, b, c, d, len = s_match(s, "^(%d+)%.(%d+)%.(%d+)%.(%d+)/?(%d*)$")
  if not a then error("ip_in: bad CIDR '" .. s .. "'", 5) end
  len = len == "" and 32 or tonumber(len)
  if len > 32 then error("ip_in: bad CIDR '" .. s .. "'", 5) end
  local ip = ((tonumber(a) * 256 + tonumber(b)) * 256 + tonumber(c)) * 256 + tonumber(d)
  local mask = len == 0 and 0 or (2 ^ 32 - 2 ^ (32 - len))
  return ip - ip % 2 ^ (32 - len), mask
end

local KNOWN = {
  type = true, within_days = true, within_hours = true, within_minutes = true, within_ms = true,
  older_than_days = true, since_ms = true, until_ms = true, host = true, url_contains = true,
  path_prefix = true, query_contains = true, query_all = true, text_contains = true,
  source = true, attr = true, ip_in = true, where = true,
}
local LIST_KEYS = {
  { "host", "host" }, { "url_contains", "url" }, { "path_prefix", "path" },
  { "query_contains", "query" }, { "query_all", "query_all" }, { "text_contains", "text" },
  { "source", "source" },
}

-- A filter table written inline in evaluate() is compiled on every call into
-- one scratch struct (no allocation; the host's scan memo keys on the bytes,
-- not the address). filter{...} compiles once into its own struct.
local FILTER_BYTES = ffi.sizeof("seg_filter")
local scratch_c = ffi.new("seg_filter")
local scratch_cf = setmetatable({ c = scratch_c }, FILTER_MT)
local NO_FILTER = {}

local function compile(f, persistent)
  if f == nil then f = NO_FILTER end
  if type(f) ~= "table" then error("filter must be a table", 3) end
  if COMPILED[f] then return f end
  for k in pairs(f) do
    if not KNOWN[k] then error("unknown filter key '" .. tostring(k) .. "'", 3) end
  end
  local c, cf
  if persistent then
    c = ffi.new("seg_filter")
    cf = setmetatable({ c = c }, FILTER_MT)
    COMPILED[cf] = true
  else
    c, cf = scratch_c, scratch_cf
    ffi.fill(c, FILTER_BYTES)
    cf.where = nil
  end
  local t = f.type
  if t ~= nil then
    local list = type(t) == "table" and t or { t }
    local mask = 0
    for i = 1, #list do
      local code = TYPES[list[i]]
      if not code then error("unknown event type '" .. tostring(list[i]) .. "'", 3) end
      mask = bor(mask, lshift(1, code))
    end
    c.typemask = mask
    if #list == 1 then c.single_type = TYPES[list[1]] end
  end
  local w = 0
  if f.within_ms then w = num(f.within_ms, "within_ms") end
  if f.within_minutes then w = num(f.within_minutes, "within_minutes") * MS_MINUTE end
  if f.within_hours then w = num(f.within_hours, "within_hours") * MS_HOUR end
  if f.within_days then w = num(f.within_days, "within_days") * MS_DAY end
  c.within_ms = w
  c.older_ms = f.older_than_days and num(f.older_than_days, "older_than_days") * MS_DAY or 0
  c.lo_ms = f.since_ms and num(f.since_ms, "since_ms") or -math.huge
  c.hi_ms = f.until_ms and num(f.until_ms, "until_ms") or math.huge
  for i = 1, #LIST_KEYS do
    local kv = LIST_KEYS[i]
    local v = f[kv[1]]
    if v == nil then c[kv[2]] = -1
    elseif type(v) == "string" then c[kv[2]] = single_needle(v, true)
    else c[kv[2]] = needles(strlist(v, kv[1])) end
  end
  if f.attr ~= nil then
    if type(f.attr) ~= "table" then error("filter key 'attr' must be a table", 3) end
    local n = 0
    for k, v in pairs(f.attr) do
      if type(k) ~= "string" then error("attr keys must be strings", 3) end
      if n >= MAX_ATTRS then error("attr: at most " .. MAX_ATTRS .. " keys", 3) end
      c.attr_key[n] = single_needle(k, false)
      if v == true then c.attr_vals[n] = -1
      elseif type(v) == "string" then c.attr_vals[n] = single_needle(v, false)
      elseif type(v) == "table" then
        for i = 1, #v do
          if type(v[i]) ~= "string" then error("attr '" .. k .. "' values must be strings", 3) end
        end
        c.attr_vals[n] = needles(v)
      else error("attr '" .. k .. "' must be a string, a list or true", 3) end
      n = n + 1
    end
    c.attr_n = n
  end
  if f.ip_in ~= nil then
    local l = type(f.ip_in) == "table" and f.ip_in or { f.ip_in }
    if #l > MAX_NETS then error("ip_in: at most " .. MAX_NETS .. " ranges", 3) end
    for i = 1, #l do c.net[i - 1], c.mask[i - 1] = parse_cidr(l[i]) end
    c.net_n = #l
  end
  if f.where ~= nil then
    if type(f.where) ~= "function" then error("filter key 'where' must be a function", 3) end
    cf.where = f.where
  end
  return cf
end

local materialize  -- forward

local function record(idx)
  local k = U.matched_n
  if k < U.matched_cap then
    U.matched[k] = idx
    U.matched_n = k + 1
  end
end

-- Scans the events matching `cf` in time order (newest first when
-- `reverse`). Stops after the first match when `stop`. When `collect`,
-- U.scratch[0..n-1] holds the matches' event numbers. Returns n.
local function scan(cf, reverse, stop, collect)
  local flags = reverse and SCAN_REVERSE or 0
  local where = cf.where
  if not where then
    if stop then flags = flags + SCAN_STOP end
    if collect then flags = flags + SCAN_COLLECT end
    return C_scan(SCAN_CTX, U, cf.c, flags + SCAN_RECORD)
  end
  -- `where` runs in Lua on the candidates the other keys left. The host
  -- cannot see what it compares (it may hold a time threshold): opaque.
  U.opaque = 1
  local n = C_scan(SCAN_CTX, U, cf.c, flags + SCAN_COLLECT)
  local sc, m = U.scratch, 0
  local explain = U.explain ~= 0
  for i = 0, n - 1 do
    local j = sc[i]
    if where(materialize(j)) then
      sc[m] = j
      m = m + 1
      if explain then record(U.ev[j].index) end
      if stop then break end
    end
  end
  return m
end

---------------------------------------------------------------------------
-- Events as tables (on demand only).

local function text(t) return t.len > 0 and ffi_string(t.ptr, t.len) or "" end

local function ip_string(ip)
  if ip == 0 then return "" end
  return s_format("%d.%d.%d.%d", rshift(ip, 24), band(rshift(ip, 16), 255),
                  band(rshift(ip, 8), 255), band(ip, 255))
end

materialize = function(j)
  local e, r = U.ev[j], C_raw(U, j)
  local attrs = {}
  local A = U.attrs
  for a = e.attr_begin, e.attr_end - 1 do
    local at = A[a]
    attrs[ffi_string(at.key, at.key_len)] = ffi_string(at.value, at.value_len)
  end
  return {
    index = e.index,
    time_ms = e.time_ms,
    type = TYPE_NAMES[e.type] or tostring(e.type),
    url = text(r.url),
    host = ffi_string(e.url + e.host_off, e.host_len),
    path = ffi_string(e.url + e.path_off, e.path_len),
    query = text(r.query),
    referrer = text(r.referrer),
    user_agent = text(r.user_agent),
    source = text(r.source),
    event_id = text(r.event_id),
    ip = ip_string(e.ipv4),
    attrs = attrs,
  }
end

local function attr_of(j, name)
  local e, A = U.ev[j], U.attrs
  for a = e.attr_begin, e.attr_end - 1 do
    local at = A[a]
    if C_equals(at.key, at.key_len, name, #name) ~= 0 then return ffi_string(at.value, at.value_len) end
  end
  return nil
end

local function field_of(j, field)
  local e = U.ev[j]
  if field == "host" then return ffi_string(e.url + e.host_off, e.host_len) end
  if field == "day" then return floor(e.time_ms / MS_DAY) end
  if field == "query" then return ffi_string(e.query, e.query_len) end
  if field == "url" then return ffi_string(e.url, e.url_len) end
  if field == "source" then return text(C_raw(U, j).source) end
  local name = s_match(field, "^attr:(.+)$")
  if name then return attr_of(j, name) end
  error("distinct: unknown field '" .. tostring(field) .. "'", 3)
end

---------------------------------------------------------------------------
-- The user object: a read-only proxy over U.

local methods = {}

function methods:count(f) return scan(compile(f), false, false, false) end
function methods:any(f) return scan(compile(f), false, true, false) > 0 end
-- first/last/events/days_since/now_ms hand times to the script, which may
-- compare them with thresholds the host cannot see: they make the call's due
-- time opaque (now + opaque_time_recheck_ms). count/any/distinct/attr do not:
-- their answers move only with the filter windows, which the host tracks.
function methods:first(f)
  U.opaque = 1
  if scan(compile(f), false, true, true) == 0 then return nil end
  return materialize(U.scratch[0])
end
function methods:last(f)
  U.opaque = 1
  if scan(compile(f), true, true, true) == 0 then return nil end
  return materialize(U.scratch[0])
end
function methods:events(f)
  U.opaque = 1
  local n = scan(compile(f), false, false, true)
  local out = {}
  for i = 1, n do out[i] = materialize(U.scratch[i - 1]) end
  return out
end
local function distinct_into(seen, count, field, f)
  local n = scan(compile(f), false, false, true)
  for i = 1, n do
    local v = field_of(U.scratch[i - 1], field)
    if v ~= nil and v ~= "" and not seen[v] then
      seen[v] = true
      count = count + 1
    end
  end
  return count
end
-- user:distinct(field, f1 [, f2, ...]): distinct values over the events
-- matching any of the filters. Fields the host knows are counted there over
-- the union of the filters' matches (no Lua table, no strings).
local HOST_FIELDS = { day = 1, host = 2, query = 3, url = 4 }
function methods:distinct(field, f, ...)
  if type(field) ~= "string" then error("distinct: field must be a string", 2) end
  local code = HOST_FIELDS[field]
  if code then
    local cf = compile(f)
    local ok = not cf.where
    if ok then C_scan(SCAN_CTX, U, cf.c, SCAN_UNION + SCAN_RECORD) end
    for k = 1, select("#", ...) do
      if not ok then break end
      cf = compile((select(k, ...)))
      ok = not cf.where
      if ok then C_scan(SCAN_CTX, U, cf.c, SCAN_UNION + SCAN_RECORD) end
    end
    local n = C_distinct(U, ok and code or 0)  -- 0: forget the union
    if ok then return n end
  end
  local seen = {}
  local count = distinct_into(seen, 0, field, f)
  for k = 1, select("#", ...) do count = distinct_into(seen, count, field, (select(k, ...))) end
  return count
end
function methods:attr(name, f)
  if type(name) ~= "string" then error("attr: name must be a string", 2) end
  local n = scan(compile(f), false, false, true)
  for i = n, 1, -1 do
    local v = attr_of(U.scratch[i - 1], name)
    if v ~= nil then return v end
  end
  return nil
end
function methods:attr_values(name, f)
  if type(name) ~= "string" then error("attr_values: name must be a string", 2) end
  local n = scan(compile(f), false, false, true)
  local out = {}
  for i = 1, n do
    local v = attr_of(U.scratch[i - 1], name)
    if v ~= nil then out[v] = (out[v] or 0) + 1 end
  end
  return out
end
function methods:days_since(f)
  U.opaque = 1
  if scan(compile(f), true, true, true) == 0 then return nil end
  return (U.now_ms - U.ev[U.scratch[0]].time_ms) / MS_DAY
end
function methods:now_ms()
  U.opaque = 1
  return U.now_ms
end
function methods:id() return ffi_string(U.id, U.id_len) end
function methods:size() return U.n end

local USER_MT = {
  __index = methods,
  __newindex = function() error("user is read-only", 2) end,
  __metatable = false,
}
-- One proxy per script, so that rawset() on it cannot reach other scripts.
local function new_user() return setmetatable({}, USER_MT) end

---------------------------------------------------------------------------
-- Sandbox.

-- Pattern functions run in C where no budget check reaches: refuse patterns
-- whose backtracking could explode (more than 3 quantifiers) and subjects
-- over 64 KiB for patterns with quantifiers.
local pattern_ok, pattern_n = {}, 0
local function check_pattern(s, p, plain)
  if plain or type(p) ~= "string" then return end
  local ok = pattern_ok[p]
  if ok == nil then
    if pattern_n >= 1024 then pattern_ok, pattern_n = {}, 0 end
    pattern_n = pattern_n + 1
    local q = 0
    local i, n = 1, #p
    while i <= n do
      local c = s_sub(p, i, i)
      if c == "%" then i = i + 1
      elseif c == "*" or c == "+" or c == "-" or c == "?" then q = q + 1 end
      i = i + 1
    end
    ok = q <= 3 and (q == 0 and 0 or q)
    pattern_ok[p] = ok
  end
  if ok == false then error("pattern too complex (more than 3 quantifiers): " .. p, 3) end
  if ok ~= 0 and type(s) == "string" and #s > 65536 then
    error("subject too long for a pattern with quantifiers", 3)
  end
end

local safe_string = {}
for k, v in pairs(string) do safe_string[k] = v end
safe_string.dump = nil
safe_string.rep = function(s, n, sep)
  if type(n) == "number" and type(s) == "string" and
     n * (#s + (type(sep) == "string" and #sep or 0)) > MAX_STRING then
    error("string.rep: result larger than the memory limit", 2)
  end
  return s_rep(s, n, sep)
end
safe_string.find = function(s, p, init, plain) check_pattern(s, p, plain) return s_find(s, p, init, plain) end
safe_string.match = function(s, p, init) check_pattern(s, p) return s_match(s, p, init) end
safe_string.gmatch = function(s, p) check_pattern(s, p) return s_gmatch(s, p) end
safe_string.gsub = function(s, p, r, n) check_pattern(s, p) return s_gsub(s, p, r, n) end
-- Method calls on strings ("x"):rep(...) go through the string metatable:
-- point it at the sanitised table and hide it from getmetatable.
local string_mt = getmetatable("")
string_mt.__index = safe_string
string_mt.__metatable = false

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

local function rethrow_if_aborting(ok, ...)
  if not ok and C_aborting() then error((...), 0) end
  return ok, ...
end
local function safe_pcall(f, ...) return rethrow_if_aborting(pcall(f, ...)) end
local function safe_xpcall(f, handler, ...)
  return rethrow_if_aborting(xpcall(f, function(e)
    if C_aborting() then return e end
    return handler(e)
  end, ...))
end

local function safe_getmetatable(v)
  if type(v) ~= "table" then return nil end
  return getmetatable(v)
end

local SAFE_GLOBALS = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
  select = select, tonumber = tonumber, tostring = tostring, type = type,
  unpack = unpack, rawequal = rawequal, rawget = rawget, rawset = rawset,
  setmetatable = setmetatable, getmetatable = safe_getmetatable,
  pcall = safe_pcall, xpcall = safe_xpcall,
}
local SAFE_LIBS = { string = safe_string, table = table, math = math, bit = bit }

local DESCRIPTORS = setmetatable({}, { __mode = "k" })

local function segment_script(d)
  if type(d) ~= "table" then error("segment_script expects a table", 2) end
  local name = d.name
  if type(name) ~= "string" or not s_find(name, "^[a-z][a-z0-9_]*$") then
    error("segment_script: name must match [a-z][a-z0-9_]*", 2)
  end
  if type(d.version) ~= "string" or d.version == "" then
    error("segment_script " .. name .. ": version must be a non-empty string", 2)
  end
  if d.description ~= nil and type(d.description) ~= "string" then
    error("segment_script " .. name .. ": description must be a string", 2)
  end
  if type(d.segments) ~= "table" or #d.segments == 0 then
    error("segment_script " .. name .. ": segments must be a non-empty list", 2)
  end
  if type(d.evaluate) ~= "function" then
    error("segment_script " .. name .. ": evaluate must be a function", 2)
  end
  for k in pairs(d) do
    if k ~= "name" and k ~= "version" and k ~= "description" and k ~= "segments" and k ~= "evaluate" then
      error("segment_script " .. name .. ": unknown field '" .. tostring(k) .. "'", 2)
    end
  end
  local segs, index = {}, {}
  for i, s in ipairs(d.segments) do
    if type(s) ~= "string" or not s_find(s, "^[a-z0-9_]+$") then
      error("segment_script " .. name .. ": segment names must match [a-z0-9_]+", 2)
    end
    if index[s] then error("segment_script " .. name .. ": duplicate segment '" .. s .. "'", 2) end
    segs[i] = s
    index[s] = i - 1
  end
  local desc = {
    name = name, version = d.version, description = d.description or "",
    segments = segs, index = index, evaluate = d.evaluate,
  }
  DESCRIPTORS[desc] = true
  return desc
end

local function new_env()
  local env = {}
  for k, v in pairs(SAFE_GLOBALS) do env[k] = v end
  for k, v in pairs(SAFE_LIBS) do env[k] = copy(v) end
  env.segment_script = segment_script
  env.filter = function(f) return compile(f, true) end
  env.lower = lower
  env.MS_DAY, env.MS_HOUR, env.MS_MINUTE = MS_DAY, MS_HOUR, MS_MINUTE
  env._G = env
  return env
end

-- The budget check passed to every instrumented chunk (see lua_budget.h).
local function make_check()
  local c = 0
  return function()
    c = c - 1
    if c <= 0 then
      c = C_budget_slow(BUDGET)
      if c < 0 then error("cpu budget exceeded", 0) end
    end
  end
end

---------------------------------------------------------------------------
-- Host API.

local scripts = {}
local api = {}

-- Compiles and runs one (instrumented) script source; returns its name,
-- version, description and declared segments.
function api.load_script(src, chunkname)
  local fn, err = loadstring(src, chunkname)
  if not fn then error(err, 0) end
  setfenv(fn, new_env())
  local d = fn(make_check())
  if not DESCRIPTORS[d] then
    error(s_sub(chunkname, 2) .. ": the script must return segment_script{...}", 0)
  end
  d.user = new_user()
  for _, s in ipairs(scripts) do
    if s.name == d.name then error(s_sub(chunkname, 2) .. ": duplicate script name '" .. d.name .. "'", 0) end
  end
  scripts[#scripts + 1] = d
  return d.name, d.version, d.description, unpack(d.segments)
end

-- Runs script i (1-based) on the current user; writes the returned segment
-- numbers to U.out and returns how many.
function api.run(i)
  local d = scripts[i]
  local r = d.evaluate(d.user)
  if r == nil then return 0 end
  if type(r) == "string" then r = { r } end
  if type(r) ~= "table" then
    error("bad result: evaluate must return a list of segment names, got " .. type(r), 0)
  end
  local out, cap, n = U.out, U.out_cap, 0
  for k = 1, #r do
    local s = r[k]
    local id = d.index[s]
    if id == nil then
      error("undeclared segment '" .. tostring(s) .. "' (declare it in segments)", 0)
    end
    if n >= cap then error("bad result: too many segments", 0) end
    out[n] = id
    n = n + 1
  end
  return n
end

function api.layout()
  return ffi.sizeof("seg_event"), ffi.sizeof("seg_event_raw"), ffi.sizeof("seg_attr"),
    ffi.sizeof("seg_user"), ffi.offsetof("seg_user", "now_ms"), ffi.offsetof("seg_user", "matched_cap"),
    ffi.offsetof("seg_event", "index"), ffi.offsetof("seg_attr", "value"),
    ffi.sizeof("seg_filter"), ffi.offsetof("seg_filter", "mask"),
    ffi.offsetof("seg_user", "opaque")
end

-- Defence in depth: nothing dangerous stays reachable from the globals.
for _, k in ipairs({ "io", "os", "debug", "package", "require", "load", "loadstring", "dofile",
                     "loadfile", "module", "newproxy", "jit", "ffi", "collectgarbage", "gcinfo",
                     "getfenv", "setfenv", "print", "coroutine" }) do
  _G[k] = nil
end
-- (package.loaded keeps ffi and jit: LuaJIT's FFI state points into the ffi
-- module's upvalues, so collecting the module corrupts lua_close. Scripts
-- cannot reach package.loaded: no require, getfenv or debug.)

return api
