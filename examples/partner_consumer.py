#!/usr/bin/python3
"""A partner's consumer of `segmentation-results` (docs/partners.md).

  partner_consumer.py --bootstrap HOST:PORT [--group G] [--from-beginning]
                      [--max-messages N] [--idle-exit S] [--proto-dir DIR]

Keeps each user's current segments as the partner guide says: the result
with the highest `seq` wins, a lower or equal `seq` is a redelivery or an
older result and is ignored, a null value (tombstone) means the user was
forgotten. Prints one JSON line per applied change on stdout and a summary
on stderr at exit. Offsets are committed after each batch is applied, so a
restart re-reads at most one batch (at least once; `seq` makes it harmless).

Needs /usr/bin/python3 with Debian's python3-kafka, python3-protobuf and
python3-grpc-tools (to compile proto/segmentation.proto at start).
"""
import argparse
import json
import sys
import time

from kafka import KafkaConsumer  # Debian: python3-kafka

import seg_protos


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--topic", default="segmentation-results")
    parser.add_argument("--group", default="partner-example", help="consumer group")
    parser.add_argument("--from-beginning", action="store_true",
                        help="a new group starts at the oldest result (default: newest)")
    parser.add_argument("--max-messages", type=int, default=0, help="stop after N (0: never)")
    parser.add_argument("--idle-exit", type=float, default=0,
                        help="stop after S seconds without a message (0: never)")
    parser.add_argument("--proto-dir", help="directory of segmentation.proto")
    args = parser.parse_args()

    (segmentation_pb2,) = seg_protos.load("segmentation", proto_dir=args.proto_dir)
    consumer = KafkaConsumer(
        args.topic, bootstrap_servers=args.bootstrap.split(","), group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if args.from_beginning else "latest",
        key_deserializer=lambda k: k.decode("utf-8") if k is not None else None)

    current = {}  # user id -> (seq, segments)
    counts = {"results": 0, "applied": 0, "stale": 0, "forgotten": 0}
    last_message = time.monotonic()
    try:
        while not args.max_messages or counts["results"] < args.max_messages:
            remaining = args.max_messages - counts["results"] if args.max_messages else None
            batch = consumer.poll(timeout_ms=200, max_records=remaining)
            if not batch:
                if args.idle_exit and time.monotonic() - last_message > args.idle_exit:
                    break
                continue
            last_message = time.monotonic()
            for records in batch.values():
                for record in records:
                    counts["results"] += 1
                    apply(record, current, counts, segmentation_pb2)
            consumer.commit()
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close(autocommit=False)
    print(json.dumps({**counts, "users": len(current)}), file=sys.stderr)
    return 0


def apply(record, current, counts, segmentation_pb2):
    user = record.key
    if record.value is None:  # tombstone: forget everything about the user
        counts["forgotten"] += 1
        current.pop(user, None)
        print(json.dumps({"user": user, "forgotten": True}), flush=True)
        return
    result = segmentation_pb2.SegmentationResult.FromString(record.value)
    kept = current.get(result.user_id)
    if kept is not None and result.seq <= kept[0]:
        counts["stale"] += 1
        return
    counts["applied"] += 1
    current[result.user_id] = (result.seq, list(result.segments))
    print(json.dumps({
        "user": result.user_id,
        "segments": list(result.segments),
        "entered": list(result.entered),
        "exited": list(result.exited),
        "reason": segmentation_pb2.ResultReason.Name(result.reason),
        "bot": result.bot,
        "seq": result.seq,
    }), flush=True)


if __name__ == "__main__":
    sys.exit(main())
