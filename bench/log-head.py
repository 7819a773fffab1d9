#!/usr/bin/env python3
"""Reads a cluster's log archive in a file:// repository for bench/log-backup.sh.

    log-head.py point  REPO CLUSTER          latest backup point (µs) or nothing
    log-head.py caught REPO CLUSTER MIN_US [POS]
        exit 0 when the archive holds everything before MIN_US (its latest backup
        point is at or after it) or, given POS (`lsn:X/Y`, `binlog:FILE:N`), when
        the head's end position is at or after POS; exit 1 otherwise
    log-head.py sum    REPO CLUSTER          "<pieces> <txns> <rows> <bytes> <raw_bytes>"
    log-head.py time   MICROS                RFC 3339 (UTC, microseconds)
    log-head.py setpos REPO CLUSTER SET      the set manifest's position

The repository is not encrypted, so its documents are plain JSON (layout: see
crates/ferry-backup/src/log/index.rs and layout.rs; the physical method's WAL
archive: crates/ferry-backup/src/physical/wal.rs, clusters/<c>/wal/).
"""
import datetime
import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def log_dir(repo, cluster):
    return os.path.join(repo, "clusters", cluster, "log")


def head(repo, cluster):
    """The archive head as {archived_through_us, end}: the logical archive's
    log/head.json, or the physical WAL archive's wal/head.json."""
    h = load(os.path.join(log_dir(repo, cluster), "head.json"))
    if h is not None:
        return h
    w = load(os.path.join(repo, "clusters", cluster, "wal", "head.json"))
    if w is None:
        return {}
    end = w.get("end_lsn") or ""
    return {
        "archived_through_us": w.get("latest_point_us"),
        "end": end if end.startswith("lsn:") or not end else "lsn:" + end,
    }


def pos_key(p):
    """A position as a comparable tuple: lsn:X/Y or binlog:FILE:N[;gtid:…]."""
    p = p.split(";")[0]
    if p.startswith("lsn:"):
        hi, lo = p[4:].split("/")
        return (0, int(hi, 16) << 32 | int(lo, 16))
    if p.startswith("binlog:"):
        name, off = p[7:].rsplit(":", 1)
        return (int(name.rsplit(".", 1)[1]), int(off))
    raise ValueError(f"unknown position {p!r}")


def main():
    cmd = sys.argv[1]
    if cmd == "time":
        us = int(sys.argv[2])
        t = datetime.datetime.fromtimestamp(us / 1e6, datetime.timezone.utc)
        print(t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        return 0
    repo, cluster = sys.argv[2], sys.argv[3]
    if cmd == "point":
        p = head(repo, cluster).get("archived_through_us")
        if p is not None:
            print(p)
        return 0
    if cmd == "caught":
        h = head(repo, cluster)
        if (h.get("archived_through_us") or 0) >= int(sys.argv[4]):
            return 0
        if len(sys.argv) > 5 and h.get("end"):
            try:
                return 0 if pos_key(h["end"]) >= pos_key(sys.argv[5]) else 1
            except (ValueError, IndexError):
                return 1
        return 1
    if cmd == "sum":
        d = os.path.join(log_dir(repo, cluster), "index")
        if not os.path.isdir(d):  # the physical method: WAL segment entries
            d = os.path.join(repo, "clusters", cluster, "wal", "index")
        n = txns = rows = b = raw = 0
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            e = load(os.path.join(d, name))
            if e is None:
                continue
            n += 1
            txns += e.get("txns", 0)
            rows += e.get("rows", 0)
            b += e.get("bytes", 0)
            raw += e.get("raw_bytes", 0)
        print(n, txns, rows, b, raw)
        return 0
    if cmd == "setpos":
        m = load(os.path.join(repo, "clusters", cluster, "sets", sys.argv[4], "manifest.json"))
        print((m or {}).get("position") or "")
        return 0
    print(f"unknown command {cmd}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
