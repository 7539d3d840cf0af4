"""Summarise a py-spy ``-f raw`` profile (``python -m bench.wave --profile`` writes one into its workdir).

    python -m bench.profile_summary state/bench/wave-300/profile.raw [--top 30]

Prints the share of on-CPU samples under each frame (inclusive) and the top self-time frames, plus a
coarse attribution of the orchestration's CPU to buckets (Prefect, paramiko/crypto, SQLAlchemy/SQLite,
httpx, logging, project code).
"""

from __future__ import annotations

import argparse
from collections import Counter

BUCKETS = [  # first match wins, checked against each frame's file path, innermost frame first
    ("paramiko / cryptography", ("paramiko/", "cryptography/", "nacl/", "bcrypt/")),
    ("SQLAlchemy / sqlite3", ("sqlalchemy/", "sqlite3/")),
    ("httpx / httpcore / h11 (provisioning API, WS-Man)", ("httpx/", "httpcore/", "h11/", "anyio/")),
    ("logging (incl. Prefect's API log handler)", ("logging/", "prefect/logging/")),
    ("pydantic", ("pydantic/", "pydantic_core/")),
    ("Prefect (task/flow engine, API client, events)", ("prefect/",)),
    ("project code (tasks/, flows/)", ("tasks/", "flows/")),
    ("threading / queues", ("threading.py", "queue.py", "concurrent/")),
]


def summarise(path: str, top: int = 30) -> dict:
    inclusive: Counter = Counter()
    self_time: Counter = Counter()
    buckets: Counter = Counter()
    total = 0
    for line in open(path):
        stack, _, n = line.rstrip("\n").rpartition(" ")
        if not n.isdigit():
            continue
        n = int(n)
        total += n
        frames = stack.split(";")
        for fr in set(frames):
            inclusive[fr] += n
        self_time[frames[-1]] += n
        for name, keys in BUCKETS:
            if any(any(k in fr for k in keys) for fr in reversed(frames[-1:])):
                buckets[name] += n
                break
        else:
            # attribute by the innermost frame that matches any bucket
            for fr in reversed(frames):
                hit = next((name for name, keys in BUCKETS if any(k in fr for k in keys)), None)
                if hit:
                    buckets[hit] += n
                    break
            else:
                buckets["other"] += n
    return {"samples": total,
            "buckets": {k: round(v / total, 3) for k, v in buckets.most_common()},
            "inclusive": [(round(v / total, 3), k) for k, v in inclusive.most_common(top)],
            "self": [(round(v / total, 3), k) for k, v in self_time.most_common(top)]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--grep", default=None, help="only inclusive frames containing this text")
    args = ap.parse_args()
    s = summarise(args.raw, 400 if args.grep else args.top)
    print(f"{s['samples']} samples")
    for k, v in s["buckets"].items():
        print(f"  {v:6.1%}  {k}")
    print("inclusive:")
    for v, k in s["inclusive"]:
        if not args.grep or args.grep in k:
            print(f"  {v:6.1%}  {k[:160]}")
    print("self:")
    for v, k in s["self"][: args.top]:
        print(f"  {v:6.1%}  {k[:160]}")


if __name__ == "__main__":
    main()
