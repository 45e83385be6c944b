"""The Python peer of `streamtier archive --once`: what a user would write with redis-py and pyarrow.

For each partition stream: XRANGE in batches of 1000 (continuing after the last id), then one
Parquet file (id string, ts timestamp[ms, UTC], fields map<string, string>, zstd) per stream.
Prints one JSON line: {"entries": N, "seconds": S, "bytes": B}.

    python3 tests/bench/peer.py --url redis://127.0.0.1:6379 --keys bench:0,bench:1 --out DIR
"""

import argparse
import json
import os
import time

import pyarrow as pa
import pyarrow.parquet as pq
import redis

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("fields", pa.map_(pa.string(), pa.string())),
    ]
)


def archive_stream(r, key, path):
    ids, ts, fields = [], [], []
    start = "-"
    while True:
        batch = r.xrange(key, start, "+", count=1000)
        for entry_id, values in batch:
            ids.append(entry_id)
            ts.append(int(entry_id.split("-", 1)[0]))
            fields.append(list(values.items()))
        if len(batch) < 1000:
            break
        start = "(" + batch[-1][0]
    table = pa.table(
        [
            pa.array(ids, pa.string()),
            pa.array(ts, pa.timestamp("ms", tz="UTC")),
            pa.array(fields, pa.map_(pa.string(), pa.string())),
        ],
        schema=SCHEMA,
    )
    pq.write_table(table, path, compression="zstd")
    return len(ids), os.path.getsize(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--keys", required=True, help="comma-separated stream keys")
    ap.add_argument("--out", required=True, help="output directory")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    r = redis.Redis.from_url(args.url, decode_responses=True)
    start = time.perf_counter()
    entries = written = 0
    for key in args.keys.split(","):
        path = os.path.join(args.out, key.replace(":", "_") + ".parquet")
        n, b = archive_stream(r, key, path)
        entries += n
        written += b
    seconds = time.perf_counter() - start
    print(json.dumps({"entries": entries, "seconds": seconds, "bytes": written}))


if __name__ == "__main__":
    main()
