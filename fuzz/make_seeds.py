#!/usr/bin/python3
"""Writes the hand-made seed inputs of the fuzz targets under fuzz/corpus/.

Run from the repository root: /usr/bin/python3 fuzz/make_seeds.py (needs protoc and
python3-protobuf). The committed corpora are these seeds plus what fuzzing
added (merged with -merge=1); the store_wire seeds come from
fuzz/make_store_wire_seeds.cc, the lua_script seeds are copies of scripts/.
"""
import hashlib, os, shutil, struct, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
tmp = tempfile.mkdtemp()
subprocess.check_call(["protoc", "-I" + os.path.join(ROOT, "proto"), "--python_out=" + tmp,
                       "events.proto", "stats.proto"], cwd=ROOT)
sys.path.insert(0, tmp)
import events_pb2, stats_pb2  # noqa: E402


def put(target, data):
    d = os.path.join(ROOT, "fuzz", "corpus", target)
    os.makedirs(d, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


NOW = 1_750_000_000_000
# ingest_event: protobuf and JSON events, good and bad.
e = events_pb2.Event(user_id="u1", event_time_ms=NOW - 1000, type=events_pb2.PAGE_VIEW,
                     url="https://example.com/cats", ip="10.1.2.3", user_agent="Mozilla/5.0",
                     event_id="ev-1", source="web")
e.attributes["car_year"] = "2012"
put("ingest_event", e.SerializeToString())
e2 = events_pb2.Event(user_id="u2", event_time_ms=NOW - 5, type=events_pb2.SEARCH,
                      search_query="kia rio 2012", ip="2001:db8::1")
put("ingest_event", e2.SerializeToString())
put("ingest_event", events_pb2.Event(user_id="", event_time_ms=NOW).SerializeToString())
for j in [
    '{"userId":"u3","eventTimeMs":"1749999999000","type":"CLICK","url":"https://x/y",'
    '"attributes":{"a":"b"},"ip":"192.168.0.1"}',
    '{"user_id":"u4","event_time_ms":1749999999000,"type":"PURCHASE","referrer":"r"}',
    '  {"userId":"u5","eventTimeMs":1749999999000,"type":4,"unknownField":1}',
    '{"userId":"u\\u0001","eventTimeMs":1}',
]:
    put("ingest_event", j.encode())


def qualifier(time_ms, digest, type_):
    return struct.pack(">qQB", time_ms, digest, type_)


# event_cell: qualifier + StoredEvent.
s = events_pb2.StoredEvent(type=1, url="https://example.com/", referrer="r", ipv4=0x0a010203,
                           user_agent="ua", search_query="q", event_id="id", source="web")
s.attributes["k"] = "v"
s.attributes["k2"] = ""
put("event_cell", qualifier(NOW, 0x1234, 1) + s.SerializeToString())
put("event_cell", qualifier(NOW, 7, 2) + events_pb2.StoredEvent(
    ipv6=b"\x20\x01" + b"\0" * 14).SerializeToString())
put("event_cell", qualifier(0, 0, 0))

# key_codec: keys with and without 0x00 bytes in row and qualifier.
def esc(b):
    return b.replace(b"\0", b"\0\xff") + b"\0\x01"


for row, q, ts in [(b"user-1", b"m", 5), (b"u\0", qualifier(NOW, 1, 1), NOW), (b"", b"", 0)]:
    put("key_codec", esc(row) + esc(q) + struct.pack(">Q", (~ts) & (2**64 - 1)))

# hll_decode: mode 0 (as is) strings from Redis's layout, modes 1 and 2.
hdr_dense = b"HYLL\0" + b"\0" * 11
hdr_sparse = b"HYLL\x01" + b"\0" * 11
put("hll_decode", b"\0" + hdr_sparse + bytes([0x7f, 0xff]))  # XZERO 16384
put("hll_decode", b"\0" + hdr_sparse + bytes([0x40, 0x10, 0x84, 0x7f, 0xee]))  # zeros, VAL, XZERO
put("hll_decode", b"\x01" + bytes(range(256)) * 4)  # dense, first registers set
put("hll_decode", b"\x02" + bytes([0x7f, 0xff]))

# stats_request: byte 0 = method (0 SegmentSize, 1 Union, 2 Intersection, 3 SizeSeries).
days = stats_pb2.DayRange(**{"from": "2025-06-01", "to": "2025-06-30"})
put("stats_request", b"\0" + stats_pb2.SegmentSizeRequest(segment="pet_owner", days=days)
    .SerializeToString())
put("stats_request", b"\x03" + stats_pb2.SegmentSizeRequest(
    segment="pet_owner", days=stats_pb2.DayRange(**{"from": "20250101"})).SerializeToString())
put("stats_request", b"\x01" + stats_pb2.SegmentSetRequest(
    segments=["a", "b", "a"], days=days).SerializeToString())
put("stats_request", b"\x02" + stats_pb2.SegmentSetRequest(
    segments=["s%d" % i for i in range(13)], days=days).SerializeToString())
put("stats_request", b"\x01" + stats_pb2.SegmentSetRequest(
    segments=["s%d" % i for i in range(101)], days=stats_pb2.DayRange(
        **{"from": "1970-01-01", "to": "9999-12-31"})).SerializeToString())

# lua_script: the shipped scripts, plus hostile ones.
for name in sorted(os.listdir(os.path.join(ROOT, "scripts"))):
    if name.endswith(".lua"):
        with open(os.path.join(ROOT, "scripts", name), "rb") as f:
            put("lua_script", f.read())
for src in [
    b"while true do end",
    b"local function f(n) return f(n + 1) + 1 end return f(1)",
    b"local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1000) end",
    b"::a:: goto a",
    b"return segment_script { name = 'x', version = '1', segments = { 's' },"
    b" evaluate = function(user) repeat until false end }",
    b"return segment_script { name = 'y', version = '1', segments = { 's' },"
    b" evaluate = function(user) return { 'not_declared' } end }",
    b"local __segK = 1",
    b"--[[ do ]] local s = [==[ while ]==] return \"do\"",
]:
    put("lua_script", src)
# store_wire: sessions written by the generated Thrift client.
gen = os.path.join(ROOT, "build", "fuzz", "fuzz", "make_store_wire_seeds")
if os.path.exists(gen):
    d = os.path.join(ROOT, "fuzz", "corpus", "store_wire")
    os.makedirs(d, exist_ok=True)
    subprocess.check_call([gen, d])
else:
    print("make_seeds: build make_store_wire_seeds first (tools/dev build fuzz "
          "--target make_store_wire_seeds)", file=sys.stderr)
shutil.rmtree(tmp)
