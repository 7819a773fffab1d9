#!/usr/bin/env python3
"""Samples a running log archiver once a second for bench/log-backup.sh.

    log-sample.py REPO_DIR CLUSTER PID OUT

Each second it reads the archive head the archiver keeps in a file:// repository
(clusters/<cluster>/log/head.json: `archived_through_us` is the latest backup point,
the commit time of the newest change durably archived; for the physical method
clusters/<cluster>/wal/head.json, `latest_point_us`) and the archiver's resident
memory (/proc/PID/status VmRSS), and appends one line to OUT:

    <unix time> <latency s or NA> <RSS kB> <archived_through_us or NA> <txns archived>

latency = now - latest backup point, as `ferry backup list --kind log` shows it.
Reading the head file directly (rather than running `ferry backup list` each second)
keeps the sampler's own CPU use out of the measurement; the repository is not
encrypted, so the head is plain JSON. *txns archived* sums the `txns` of the piece
index entries stored so far (an entry is written once its piece is durable), for the
archive's sustained rate. Runs until killed or the archiver exits.
"""
import json
import os
import sys
import time


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return 0


def head_point(paths):
    for path in paths:
        try:
            with open(path) as f:
                h = json.load(f)
        except OSError:
            continue  # absent (yet)
        except ValueError:
            return None  # caught between writes
        p = h.get("archived_through_us", h.get("latest_point_us"))
        return None if p is None else int(p)
    return None


def main():
    repo, cluster, pid, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    # the logical archive's head, or the physical method's WAL archive head
    head = [os.path.join(repo, "clusters", cluster, d, "head.json") for d in ("log", "wal")]
    index = os.path.join(repo, "clusters", cluster, "log", "index")
    seen, txns = set(), 0
    nxt = time.time()
    with open(out, "a", buffering=1) as f:
        while True:
            rss = rss_kb(pid)
            if rss is None:
                return
            point = head_point(head)
            try:
                names = os.listdir(index)
            except OSError:
                names = []
            for name in names:
                if name in seen:
                    continue
                try:
                    with open(os.path.join(index, name)) as e:
                        txns += int(json.load(e).get("txns", 0))
                    seen.add(name)
                except (OSError, ValueError, TypeError):
                    pass  # being written: read it next time
            now = time.time()
            lat = "NA" if point is None else f"{now - point / 1e6:.3f}"
            f.write(f"{now:.3f} {lat} {rss} {point if point is not None else 'NA'} {txns}\n")
            nxt += 1.0
            time.sleep(max(0.0, nxt - time.time()))


if __name__ == "__main__":
    main()
