#!/usr/bin/python3
"""An analyst's client of seg-stats, built from proto/stats.proto alone.

  analyst_client.py [--target HOST:PORT] [--token T] CMD ...
    segments                       every known segment with today's size
    size SEGMENT    [--from D] [--to D] [--last N]
    union SEG...    [--from D] [--to D] [--last N]
    overlap SEG...  [--from D] [--to D] [--last N]   (2..12 segments)
    series SEGMENT  [--from D] [--to D] [--last N]
    user USER_ID                   the user's current segments

One call per command (SegmentSize, Union, Intersection, SizeSeries,
ListSegments, UserSegments), the reply printed as JSON (proto field names).
Days are UTC "YYYY-MM-DD"; no days = today. Exit status: 0 ok, 1 the server
answered an error (printed as `CODE: message`), 2 bad command line.

Needs /usr/bin/python3 with Debian's python3-grpcio, python3-protobuf and
python3-grpc-tools (to compile proto/stats.proto at start).
"""
import argparse
import datetime
import json
import os
import sys

import grpc  # Debian: python3-grpcio
from google.protobuf import json_format  # Debian: python3-protobuf

import seg_protos


def day_range(stats_pb2, args):
    today = datetime.datetime.now(datetime.timezone.utc).date()
    if args.last:
        first, last = today - datetime.timedelta(days=args.last - 1), today
    else:
        first = args.from_day or today.isoformat()
        last = args.to_day or first
    # `from` is a Python keyword: set the fields by name.
    days = stats_pb2.DayRange()
    setattr(days, "from", str(first))
    days.to = str(last)
    return days


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default="127.0.0.1:7710", help="seg-stats host:port")
    parser.add_argument("--token", default=os.environ.get("SEG_STATS_TOKEN", ""),
                        help="bearer token (default: $SEG_STATS_TOKEN)")
    parser.add_argument("--timeout", type=float, default=10, help="seconds per call")
    parser.add_argument("--proto-dir", help="directory of stats.proto")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("segments")
    for name, nargs in (("size", None), ("union", "+"), ("overlap", "+"), ("series", None)):
        cmd = commands.add_parser(name)
        cmd.add_argument("segments", nargs=nargs or 1)
        cmd.add_argument("--from", dest="from_day")
        cmd.add_argument("--to", dest="to_day")
        cmd.add_argument("--last", type=int, default=0, help="the N days ending today")
    commands.add_parser("user").add_argument("user_id")
    args = parser.parse_args()

    stats_pb2, stats_pb2_grpc = seg_protos.load("stats", grpc=True, proto_dir=args.proto_dir)
    stub = stats_pb2_grpc.SegmentStatsStub(grpc.insecure_channel(args.target))
    metadata = [("authorization", "Bearer " + args.token)] if args.token else None
    if args.command == "segments":
        call, request = stub.ListSegments, stats_pb2.ListSegmentsRequest()
    elif args.command == "user":
        call, request = stub.UserSegments, stats_pb2.UserSegmentsRequest(user_id=args.user_id)
    elif args.command in ("size", "series"):
        call = stub.SegmentSize if args.command == "size" else stub.SizeSeries
        request = stats_pb2.SegmentSizeRequest(segment=args.segments[0],
                                               days=day_range(stats_pb2, args))
    else:
        call = stub.Union if args.command == "union" else stub.Intersection
        request = stats_pb2.SegmentSetRequest(segments=args.segments,
                                              days=day_range(stats_pb2, args))
    try:
        reply = call(request, timeout=args.timeout, metadata=metadata)
    except grpc.RpcError as e:
        print(f"{e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    print(json.dumps(json_format.MessageToDict(reply, preserving_proto_field_name=True,
                                               including_default_value_fields=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
