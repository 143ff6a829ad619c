"""Support-desk page latency: from a shopper lookup to the ranked list, to the first streamed word
(the verified stream starts with each item's frame, written from the facts), to the first and the
last verified justification, read from the page's own event stream (/api/stream).

    # against a running page (explainrec serve --http-port 8080, or explainrec desk):
    python bench/bench_desk.py --desk http://127.0.0.1:8080/ --db .explainrec/catalog.sqlite --users 10
    # or start `explainrec serve --http-port 0` on a copy of a workdir, measure, stop it:
    python bench/bench_desk.py --serve-workdir .explainrec --users 10 --json desk.json

Shoppers are picked at random (seeded) among those with at least 3 events. Requests run one at a
time, as one agent works. The browser test (tests/test_desk_browser.py) measures the same in Chromium.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def users_from(db: Path, n: int, seed: int) -> list[str]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = [r[0] for r in con.execute("SELECT user_id FROM events GROUP BY user_id HAVING COUNT(*) >= 3 ORDER BY user_id")]
    con.close()
    return random.Random(seed).sample(rows, min(n, len(rows)))


def one(http: httpx.Client, user: str, k: int) -> dict:
    t0 = time.perf_counter()
    out: dict = {"user": user}
    finals = 0
    event = None
    with http.stream("GET", "/api/stream", params={"user_id": user, "k": k}) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event:
                now = time.perf_counter() - t0
                data = json.loads(line[5:])
                if event == "ranked":
                    out["ranked_s"], out["items"] = now, len(data["items"])
                elif event == "chunk" and data["delta"].strip() and "first_word_s" not in out:
                    out["first_word_s"] = now
                elif event == "final":
                    finals += 1
                    out.setdefault("first_final_s", now)
                    out.setdefault("first_word_s", now)
                    out.setdefault("sources", []).append(data["justification"]["source"])
                elif event == "done":
                    out["all_final_s"] = now
                elif event == "error":
                    raise RuntimeError(data)
                event = None
    out["finals"] = finals
    return out


def start_serve(workdir: Path, tmp: Path) -> tuple[subprocess.Popen, str]:
    """`explainrec serve --http-port 0` on a copy of the workdir (the bench never writes to yours)."""
    copy = tmp / "workdir"
    shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("*.log", "logs", "*-wal", "*-shm"))
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--workdir", str(copy), "--port", "0",
                             "--metrics-port", "-1", "--http-port", "0"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=open(tmp / "serve.log", "w"), text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    info = json.loads(proc.stdout.readline())
    from server.client import ExplainRecClient
    with ExplainRecClient(info["grpc"]) as c:
        c.wait_until_serving(timeout_s=900)
    return proc, info["desk"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--desk", default="", help="URL of a running desk page")
    ap.add_argument("--db", type=Path, default=None, help="catalog.sqlite to pick shoppers from")
    ap.add_argument("--serve-workdir", type=Path, default=None, help="start explainrec serve on a copy of this workdir")
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("-k", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    proc = None
    tmp = Path(tempfile.mkdtemp(prefix="bench-desk-"))
    try:
        if args.serve_workdir:
            t0 = time.perf_counter()
            proc, desk = start_serve(args.serve_workdir, tmp)
            print(f"serve with the desk page ready after {time.perf_counter() - t0:.0f} s: {desk}", flush=True)
            db = tmp / "workdir" / "catalog.sqlite"
        else:
            desk, db = args.desk, args.db
        users = users_from(db, args.users, args.seed)
        runs = []
        with httpx.Client(base_url=desk, timeout=600) as http:
            one(http, users[0], args.k)     # warm-up (first prompt compiles, caches fill)
            for u in users:
                r = one(http, u, args.k)
                runs.append(r)
                print(f"{u}: list {r['ranked_s']:.2f} s, first word {r['first_word_s']:.2f} s, "
                      f"first verified {r['first_final_s']:.2f} s, "
                      f"all {r['finals']} justified {r['all_final_s']:.2f} s, llm {r['sources'].count('llm')}/{r['finals']}",
                      flush=True)
        summary = {"users": len(runs), "k": args.k}
        for key in ("ranked_s", "first_word_s", "first_final_s", "all_final_s"):
            vals = sorted(r[key] for r in runs)
            summary[key] = {"p50": round(statistics.median(vals), 3), "max": round(vals[-1], 3)}
        summary["llm_share"] = round(sum(r["sources"].count("llm") for r in runs) / sum(r["finals"] for r in runs), 3)
        print(json.dumps(summary))
        if args.json:
            args.json.write_text(json.dumps({"summary": summary, "runs": runs}, indent=1))
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
