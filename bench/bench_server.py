"""Service benchmark: prints numbers and ratios measured in one run.

1. Recommend without justifications on the Scientific catalog: 1, 8 and 64 concurrent clients
   (one channel each) over loopback for D seconds, first against the bare echo server
   (`bench/echo_server.py`: ExplainRec's contract, a canned 10-item reply: the gRPC ceiling),
   then against `explainrec serve`, both in their own process, loaded by the same client.
   `explainrec serve` runs `--workers` processes (default here: one per core; the CPU per call
   counts all of them), and each client has its own connection.
   Writes echo_rps, recommend_rps and their ratio at 64 clients, p50/p99 at each level, the
   serving event loops' lag p99 during the heaviest level (from the lag histogram on its /metrics, read
   before and after the level), and the ranker's own
   single-call latency in this process for reference.
1b. The 1M-item index the auto-choice picks (`bench/bench_index.py`): top-100 p50 on one thread
   and recall@100 against exact search (--index-items 0 skips it).
2. Recommend with justifications (k=5) through a local vLLM server, one call at a time:
   p50 / p95 end to end, and the time vLLM alone needs for the same prompts (those of the five
   items the service sends to the LLM, `Explainer.needs_llm`, sent concurrently with the same
   sampling settings, straight to vLLM; a shopper whose five all get templates is skipped).
   Users alternate which of the two goes first, so the prefix cache favours neither.

    python bench/bench_server.py --json out.json   # every part, default workdir
    python bench/bench_server.py --skip-llm        # parts 1 and 1b only
    python bench/bench_server.py --skip-llm --index-items 0 --clients 1 8 64 --duration 10
    python bench/bench_server.py --skip-load --index-items 0 --llm-users 0 --stream-users 0   # part 4 only
    python bench/bench_server.py --skip-load --llm-users 0 --stream-users 10 --json out.json   # part 3 only

3. StreamRecommend with the local vLLM, one call at a time (k=3): time to the ranked list, to
   the first text chunk, to each item's final and to the last final, and how many finals
   differed from the text streamed before them.
4. The justification cache: the latency of an explained Recommend the first time and the
   same request again, and the cache hit rate over a replay in which 30% of the requests
   repeat an earlier one (--cache-requests 0 skips it).

The ranker is the trained model when the workdir has one, else the zero-shot MiniLM
(`--zero-shot` forces it); the service and the reference use the same one.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class _Skip(Exception):
    pass


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * len(s) + 0.5)) - 1))]


# -- the service under test -------------------------------------------------------------------
class ServiceProcess:
    """`explainrec serve` in a child process on a free port; SIGTERM on exit."""

    def __init__(self, workdir: Path, extra: list[str]):
        cmd = [sys.executable, "-m", "server.cli", "serve", "--workdir", str(workdir), "--port", "0",
               "--metrics-port", "0", *extra]
        self.log = open(workdir / "logs" / "bench-serve.log", "ab")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log, text=True)
        info = json.loads(self.proc.stdout.readline())
        self.target = info["grpc"]
        self.metrics_port = info.get("metrics")
        self.workers = info.get("workers", 1)

    def wait_serving(self, timeout_s: float = 900) -> None:
        from server.client import ExplainRecClient
        with ExplainRecClient(self.target) as c:
            c.wait_until_serving(timeout_s)
        if self.workers > 1:     # every worker, not only the first: the parent says so on stdout
            while not json.loads(self.proc.stdout.readline() or "{}").get("serving"):
                if self.proc.poll() is not None:
                    raise RuntimeError("the service exited while its workers loaded")

    def cpu_s(self) -> float:
        """User + system CPU seconds the service has used so far: its process and every process under it
        (the workers of `--workers N`; not vLLM, which part 1 does not start)."""
        return tree_cpu_s(self.proc.pid)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(120)
        self.log.close()
        return rc


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of process `root` and its live descendants (from /proc)."""
    stats: dict[int, tuple[int, float]] = {}     # pid -> (parent pid, cpu seconds)
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:        # gone meanwhile
            continue
        stats[int(d.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _cpu) in stats.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return sum(stats[p][1] for p in tree if p in stats)


class EchoProcess(ServiceProcess):
    """The bare echo server (bench/echo_server.py) in a child process."""

    def __init__(self, workdir: Path):
        self.log = open(workdir / "logs" / "bench-echo.log", "ab")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "echo_server.py")], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.target = json.loads(self.proc.stdout.readline())["grpc"]

    def wait_serving(self, timeout_s: float = 60) -> None:
        import grpc
        with grpc.insecure_channel(self.target) as ch:
            grpc.channel_ready_future(ch).result(timeout_s)

    def stop_with_lag(self) -> float | None:
        """Stops the echo server; the p99 of its event-loop lag over the run (its last line), in ms."""
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=120)
        self.log.close()
        for line in reversed(out.splitlines()):
            if line.startswith("{") and "event_loop_lag_ms_p99" in line:
                return json.loads(line)["event_loop_lag_ms_p99"]
        return None


def metric_value(port: int, name: str) -> float | None:
    """One sample of a Prometheus gauge from a live server's /metrics."""
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def lag_buckets(port: int) -> dict[float, float]:
    """The serving loops' lag histogram from /metrics: upper bound (s) -> samples at or below it, summed
    over the workers (prometheus_client's multiprocess mode sums histograms)."""
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("explainrec_event_loop_lag_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            bound = float("inf") if le == "+Inf" else float(le)
            out[bound] = out.get(bound, 0.0) + float(line.split()[-1])
    return out


def histogram_quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float | None:
    """The q-quantile of the samples taken between two readings of a cumulative histogram, interpolated
    linearly inside its bucket (Prometheus's histogram_quantile); None without samples. In the last
    finite bucket or beyond, the highest finite bound."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound, cum in zip(bounds, counts):
        if cum >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * ((rank - below) / (cum - below) if cum > below else 1.0)
        lower, below = bound, cum
    return lower


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def load_ranker(catalog, workdir: Path, zero_shot: bool):
    from ranker.service import Ranker
    from store.paths import model_dir
    if not zero_shot and (model_dir(workdir) / "config.json").exists():
        return Ranker.load(model_dir(workdir), catalog), "trained"
    return Ranker.zero_shot(catalog), "zero-shot"


# -- part 1 -----------------------------------------------------------------------------------
async def load_test(target: str, users: list[str], concurrency: int, duration_s: float, k: int,
                    server_cpu, warm_s: float | None = None) -> dict:
    import grpc
    from protos.explainrec.v1 import explainrec_pb2 as pb
    from protos.explainrec.v1 import explainrec_pb2_grpc as pb_grpc

    latencies: list[float] = []
    errors: dict[str, int] = {}
    # one connection per client: without a local subchannel pool, grpc shares ONE connection among
    # channels to the same target, and the kernel would hand all of it to one `--workers` process
    channels = [grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(concurrency)]
    stubs = [pb_grpc.ExplainRecStub(ch) for ch in channels]
    rng = random.Random(0)

    async def client(stub, until: float, record: bool) -> None:
        while time.perf_counter() < until:
            req = pb.RecommendRequest(user_id=rng.choice(users), k=k)
            t0 = time.perf_counter()
            try:
                await stub.Recommend(req, timeout=10)
                if record:
                    latencies.append(time.perf_counter() - t0)
            except grpc.aio.AioRpcError as err:
                errors[err.code().name] = errors.get(err.code().name, 0) + 1

    warm_until = time.perf_counter() + (min(3.0, duration_s / 4) if warm_s is None else warm_s)
    await asyncio.gather(*(client(s, warm_until, False) for s in stubs))
    server_cpu0, client_cpu0 = server_cpu(), time.process_time()
    t0 = time.perf_counter()
    await asyncio.gather(*(client(s, t0 + duration_s, True) for s in stubs))
    wall = time.perf_counter() - t0
    server_cpu1, client_cpu1 = server_cpu(), time.process_time()
    for ch in channels:
        await ch.close()
    n = max(1, len(latencies))
    return {"concurrency": concurrency, "k": k, "duration_s": round(wall, 1), "requests": len(latencies),
            "throughput_rps": round(len(latencies) / wall, 1), "p50_ms": round(pct(latencies, 50) * 1e3, 1),
            "p99_ms": round(pct(latencies, 99) * 1e3, 1), "errors": errors,
            "server_cpu_ms_per_request": round((server_cpu1 - server_cpu0) / n * 1e3, 2),
            "client_cpu_ms_per_request": round((client_cpu1 - client_cpu0) / n * 1e3, 2)}


def ranker_alone(ranker, users: list[str], k: int, n: int = 200) -> dict:
    """ranker.recommend timed inside a worker thread set up like the service's ranking threads."""
    from concurrent.futures import ThreadPoolExecutor

    from ranker.types import RankQuery
    from server.config import ServerConfig
    from server.setup import set_search_threads

    def run() -> list[float]:
        rng = random.Random(1)
        lat = []
        for _ in range(n):
            q = RankQuery(user_id=rng.choice(users), k=k)
            t0 = time.perf_counter()
            ranker.recommend(q)
            lat.append(time.perf_counter() - t0)
        return lat

    with ThreadPoolExecutor(1, initializer=lambda: set_search_threads(ServerConfig().search_threads)) as pool:
        lat = pool.submit(run).result()
    return {"calls": n, "p50_ms": round(pct(lat, 50) * 1e3, 1), "p99_ms": round(pct(lat, 99) * 1e3, 1)}


# -- part 2 -----------------------------------------------------------------------------------
async def llm_compare(target: str, catalog, ranker, explainer, users: list[str], k: int) -> dict:
    from explainer.pipeline import RecommendPipeline
    from ranker.types import RankQuery
    from server.client import ExplainRecClient

    pipeline = RecommendPipeline(catalog, ranker, explainer)     # the service's own steps 1-4
    client = explainer.client
    cfg = explainer.config
    e2e, alone, sources, mismatches, llm_items, no_llm_users = [], [], {}, 0, 0, 0
    with ExplainRecClient(target, timeout_s=120) as svc:
        for n, user in enumerate(users):
            # the prompts the service will build: same ranking, same facts, same template
            prepared = pipeline.prepare(RankQuery(user_id=user, k=k))
            items = [r.item for r in prepared.recommendations]
            names = explainer.history_names(prepared.history)
            # only the prompts the service sends: an item with a weak reason and no link gets its
            # template with no LLM call (Explainer.needs_llm), so vLLM alone must not be timed on it
            prompts = [explainer.prompt.render(names, f) for f in prepared.facts if explainer.needs_llm(f)]
            llm_items += len(prompts)
            if not prompts:
                no_llm_users += 1
                continue

            async def vllm_alone() -> float:
                t0 = time.perf_counter()
                await asyncio.gather(*(client.chat(p.messages, n=cfg.n_samples, max_tokens=cfg.max_tokens,
                                                   temperature=cfg.temperature, top_p=cfg.top_p) for p in prompts))
                return time.perf_counter() - t0

            async def end_to_end() -> float:
                t0 = time.perf_counter()
                reply = await asyncio.to_thread(svc.recommend, user_id=user, k=k, explain=True)
                took = time.perf_counter() - t0
                if [it.item.id for it in reply.items] != [i.id for i in items]:
                    nonlocal mismatches      # e.g. the model directory was retrained between the two loads
                    mismatches += 1
                for it in reply.items:
                    key = it.justification.source + (f"/{it.justification.fallback_reason}"
                                                     if it.justification.fallback_reason else "")
                    sources[key] = sources.get(key, 0) + 1
                return took

            if n % 2 == 0:
                e2e.append(await end_to_end())
                alone.append(await vllm_alone())
            else:
                alone.append(await vllm_alone())
                e2e.append(await end_to_end())
    if not e2e:
        return {"users": len(users), "k": k, "users_compared": 0, "users_without_llm_call": no_llm_users}
    return {"users": len(users), "k": k, "n_samples": cfg.n_samples, "max_tokens": cfg.max_tokens,
            "e2e_p50_s": round(pct(e2e, 50), 3), "e2e_p95_s": round(pct(e2e, 95), 3),
            "vllm_alone_p50_s": round(pct(alone, 50), 3), "vllm_alone_p95_s": round(pct(alone, 95), 3),
            "ratio_p50": round(pct(e2e, 50) / pct(alone, 50), 3),
            "ratio_total": round(sum(e2e) / sum(alone), 3),
            "ratio_median_per_user": round(statistics.median(a / b for a, b in zip(e2e, alone)), 3),
            "justification_sources": sources, "ranking_mismatches": mismatches,
            "users_compared": len(e2e), "users_without_llm_call": no_llm_users, "llm_prompts_per_user": round(
                llm_items / max(1, len(e2e)), 2)}


# -- part 3 -----------------------------------------------------------------------------------
def stream_timings(target: str, users: list[str], k: int) -> dict:
    """StreamRecommend, one call at a time: seconds from the call to the ranked list, to the first
    text chunk, and to each item's final; and how often a final's text differed from its item's
    chunks joined (text shown to the shopper and then taken back)."""
    from server.client import ExplainRecClient

    ranked_s, first_chunk_s, final_s, last_final_s, replaced, items = [], [], [], [], 0, 0
    sources: dict[str, int] = {}
    with ExplainRecClient(target, timeout_s=300) as svc:
        for user in users:
            chunks: dict[str, str] = {}
            t0 = time.perf_counter()
            got_chunk = False
            for m in svc.stream_recommend(user_id=user, k=k, timeout_s=300):
                now = time.perf_counter() - t0
                kind = m.WhichOneof("event")
                if kind == "ranked":
                    ranked_s.append(now)
                elif kind == "chunk":
                    if not got_chunk:
                        first_chunk_s.append(now)
                        got_chunk = True
                    chunks[m.chunk.item_id] = chunks.get(m.chunk.item_id, "") + m.chunk.delta
                else:
                    final_s.append(now)
                    items += 1
                    j = m.final.justification
                    replaced += chunks.get(m.final.item_id, "") != j.text
                    key = j.source + (f"/{j.fallback_reason}" if j.fallback_reason else "")
                    sources[key] = sources.get(key, 0) + 1
            last_final_s.append(time.perf_counter() - t0)
    r = lambda xs, q: round(pct(xs, q), 3) if xs else None  # noqa: E731
    return {"users": len(users), "k": k, "items": items,
            "ranked_p50_s": r(ranked_s, 50),
            "first_chunk_p50_s": r(first_chunk_s, 50), "first_chunk_p95_s": r(first_chunk_s, 95),
            "item_final_p50_s": r(final_s, 50), "item_final_p95_s": r(final_s, 95),
            "last_final_p50_s": r(last_final_s, 50), "last_final_p95_s": r(last_final_s, 95),
            "finals_differing_from_streamed_text": replaced, "justification_sources": sources}


# -- part 4 -----------------------------------------------------------------------------------
def cache_replay(target: str, users: list[str], requests: int, k: int, repeat_share: float = 0.3) -> dict:
    """The same explained Recommend twice (first vs repeated latency), then a replay of `requests`
    explained Recommends in which `repeat_share` of them repeat an earlier request: the share of
    justifications that came from the cache."""
    from server.client import ExplainRecClient

    rng = random.Random(4)
    fresh = iter(users)
    sources: dict[str, int] = {}
    def source(j) -> str:
        return j.source + (f"/{j.fallback_reason}" if j.fallback_reason else "") + ("/cached" if j.cached else "")

    with ExplainRecClient(target, timeout_s=300) as svc:
        # a warm-up call first: the first LLM call of a fresh vLLM is slow enough to miss the deadline,
        # and a template written for a deadline is (rightly) not cached
        svc.recommend(user_id=next(fresh), k=k, explain=True)
        user = next(fresh)
        t0 = time.perf_counter()
        first = svc.recommend(user_id=user, k=k, explain=True)
        first_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = svc.recommend(user_id=user, k=k, explain=True)
        repeat_s = time.perf_counter() - t0
        first_cached = [source(it.justification) for it in first.items]
        again_cached = [source(it.justification) for it in again.items]
        seen, hits, total, repeats = [], 0, 0, 0
        for _ in range(requests):
            if seen and rng.random() < repeat_share:
                user = rng.choice(seen)
                repeats += 1
            else:
                user = next(fresh)
                seen.append(user)
            for it in svc.recommend(user_id=user, k=k, explain=True).items:
                j = it.justification
                total += 1
                hits += j.cached
                sources[source(j)] = sources.get(source(j), 0) + 1
    return {"k": k, "first_ms": round(first_s * 1e3, 1), "repeated_ms": round(repeat_s * 1e3, 2),
            "speedup": round(first_s / repeat_s, 1), "first_sources": first_cached, "repeated_sources": again_cached,
            "replay_requests": requests, "replay_repeats": repeats, "replay_justifications": total,
            "hit_rate": round(hits / total, 3) if total else None, "justification_sources": sources}


def speed_summary(out: dict) -> dict:
    """The issue-11 figures in one place, with their targets."""
    echo, rec = out.get("echo", {}), out.get("recommend_no_explanations_by_clients", {})
    top = max((int(c) for c in rec), default=None)
    summary: dict = {"load_average_during_load": out.get("load_average_during_load")}
    if top is not None and str(top) in echo:
        e, r = echo[str(top)], rec[str(top)]
        summary.update({"clients": top, "echo_rps": e["throughput_rps"], "recommend_rps": r["throughput_rps"],
                        "ratio": round(r["throughput_rps"] / e["throughput_rps"], 3),
                        "p99_over_p50": round(r["p99_ms"] / max(r["p50_ms"], 1e-9), 2)})
    if "1" in rec:
        summary["one_client_p50_ms"] = rec["1"]["p50_ms"]
    if "event_loop_lag_ms_p99" in out:
        summary["event_loop_lag_ms_p99"] = out["event_loop_lag_ms_p99"]
        summary["echo_event_loop_lag_ms_p99"] = out.get("echo_event_loop_lag_ms_p99")
    if "index_1m" in out:
        summary["index_1m_p50_ms"] = out["index_1m"].get("chosen_ms_p50")
        summary["index_1m_recall@100"] = out["index_1m"].get("chosen_recall@100")
    if "cache" in out:
        summary["cache_speedup"] = out["cache"]["speedup"]
        summary["cache_hit_rate"] = out["cache"]["hit_rate"]
    summary["targets"] = {"ratio": ">= 0.5", "p99_over_p50": "<= 2", "one_client_p50_ms": "<= 3",
                          "index_1m_p50_ms": "<= 5 at recall@100 >= 0.95, one thread",
                          "cache_speedup": ">= 100", "event_loop_lag_ms_p99": "<= 5"}
    return summary


def compare_streams(earlier_json: Path, now: dict) -> dict:
    """Part 3 of an earlier run beside this one: {metric: [earlier, now]} for the timings and counts."""
    before = json.loads(Path(earlier_json).read_text()).get("stream_recommend", {})
    keys = ("first_chunk_p50_s", "first_chunk_p95_s", "item_final_p50_s", "item_final_p95_s", "last_final_p50_s",
            "finals_differing_from_streamed_text", "justification_sources")
    return {k: [before.get(k), now.get(k)] for k in keys}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64], help="part 1 concurrency levels")
    p.add_argument("--duration", type=float, default=15.0, help="seconds per level")
    p.add_argument("--index-items", type=int, default=1_000_000, help="part 1b catalog size (0 = skip)")
    p.add_argument("--cache-requests", type=int, default=20, help="part 4 replay length (0 = skip)")
    p.add_argument("--cache-k", type=int, default=3)
    p.add_argument("--vllm-url", default="", help="use this running vLLM server instead of starting one")
    p.add_argument("--k", type=int, default=10, help="k for part 1")
    p.add_argument("--workers", type=int, default=0,
                   help="part 1: serving processes (serve --workers; 0, the default here: one per core)")
    p.add_argument("--llm-users", type=int, default=20)
    p.add_argument("--llm-k", type=int, default=5)
    p.add_argument("--skip-llm", action="store_true", help="part 1 only")
    p.add_argument("--skip-load", action="store_true", help="skip part 1")
    p.add_argument("--zero-shot", action="store_true", help="use the zero-shot ranker even if a trained one exists")
    p.add_argument("--stream-users", type=int, default=10, help="part 3: StreamRecommend calls (0 = skip)")
    p.add_argument("--stream-k", type=int, default=3)
    p.add_argument("--json", type=Path, default=None, help="also write all the numbers to this file")
    p.add_argument("--compare", type=Path, default=None,
                   help="a --json file of an earlier run (e.g. before a change): part 3 printed side by side")
    args = p.parse_args()

    import logging
    logging.basicConfig(level=logging.WARNING)
    from store.catalog import Catalog
    from store.paths import db_path, default_workdir, model_dir
    workdir = (args.workdir or default_workdir()).resolve()
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    zero_shot = args.zero_shot or not (model_dir(workdir) / "config.json").exists()
    ranker_flag = ["--zero-shot"] if zero_shot else ["--no-zero-shot", "--no-train-if-missing"]
    catalog = Catalog(db_path(workdir))
    users = catalog.user_ids()
    out: dict = {"machine": f"{os.cpu_count()} cpus", "items": catalog.item_count(), "users": len(users)}

    if not args.skip_load:
        echo = EchoProcess(workdir)
        try:
            echo.wait_serving()
            out["echo"] = {str(c): asyncio.run(load_test(echo.target, users, c, args.duration, args.k, echo.cpu_s))
                           for c in args.clients}
        finally:
            out["echo_event_loop_lag_ms_p99"] = echo.stop_with_lag()
        print(json.dumps({"echo": out["echo"]}, indent=2), flush=True)
        svc = ServiceProcess(workdir, ["--no-llm", "--workers", str(args.workers), *ranker_flag])
        out["workers"] = svc.workers
        try:
            svc.wait_serving()
            levels = {}
            for c in args.clients:
                heaviest = c == max(args.clients)
                before = lag_buckets(svc.metrics_port) if heaviest and svc.metrics_port else None
                levels[str(c)] = asyncio.run(load_test(svc.target, users, c, args.duration, args.k, svc.cpu_s))
                if heaviest:
                    out["load_average_during_load"] = load_average()
                if before is not None:
                    # the lag of the samples taken during this level (its warm-up included), every worker's;
                    # the server's own p99 gauge covers its last 3,000 samples, i.e. the lighter level before too
                    lag = histogram_quantile(0.99, before, lag_buckets(svc.metrics_port))
                    out["event_loop_lag_ms_p99"] = None if lag is None else round(lag * 1e3, 2)
                    window = metric_value(svc.metrics_port, "explainrec_event_loop_lag_p99_seconds")
                    out["event_loop_lag_ms_p99_server_window"] = None if window is None else round(window * 1e3, 2)
            out["recommend_no_explanations_by_clients"] = levels
        finally:
            out["recommend_no_explanations_server_exit"] = svc.stop()
        ranker, out["ranker"] = load_ranker(catalog, workdir, zero_shot)
        out["ranker_alone_in_process"] = ranker_alone(ranker, users, args.k)
        del ranker
        print(json.dumps(out, indent=2), flush=True)
    if args.index_items:
        from bench.bench_index import bench_chosen_index
        out["index_1m"] = bench_chosen_index(workdir, args.index_items)
        print(json.dumps({"index_1m": out["index_1m"]}, indent=2), flush=True)

    if not args.skip_llm:
        from explainer.config import ExplainerConfig
        from explainer.prepare import prepare_model
        from explainer.service import Explainer
        from explainer.vllm_server import LocalVLLMServer
        import contextlib

        @contextlib.contextmanager
        def running_vllm():
            """The local vLLM server, or the one at --vllm-url (a machine too busy to start another)."""
            if not args.vllm_url:
                with LocalVLLMServer(ExplainerConfig.from_env(workdir=workdir, model_dir=prepare_model(workdir))) as v:
                    yield v
                return
            import types
            import urllib.request
            models = json.loads(urllib.request.urlopen(args.vllm_url.rstrip("/") + "/v1/models", timeout=10).read())
            yield types.SimpleNamespace(url=args.vllm_url, model_name=models["data"][0]["id"])
        with running_vllm() as vllm:
            svc = ServiceProcess(workdir, ["--vllm-url", vllm.url, *ranker_flag])
            explainer = Explainer.from_catalog(ExplainerConfig.from_env(vllm_url=vllm.url, model=vllm.model_name), catalog)
            try:
                svc.wait_serving()
                ranker, _ = load_ranker(catalog, workdir, zero_shot)     # the same model files as the service
                rng = random.Random(2)
                picked = rng.sample([u for u in users if len(catalog.history(u)) >= 3], args.llm_users)

                async def run():
                    try:
                        return await llm_compare(svc.target, catalog, ranker, explainer, picked, args.llm_k)
                    finally:
                        await explainer.aclose()
                if args.llm_users:
                    out["recommend_with_explanations"] = asyncio.run(run())
                    print(json.dumps({"recommend_with_explanations": out["recommend_with_explanations"]},
                                     indent=2), flush=True)
                if args.cache_requests:
                    fresh = random.Random(5).sample([u for u in users if len(catalog.history(u)) >= 3],
                                                    args.cache_requests + 2)
                    out["cache"] = cache_replay(svc.target, fresh, args.cache_requests, args.cache_k)
                    print(json.dumps({"cache": out["cache"]}, indent=2), flush=True)
                if args.stream_users:
                    picked = random.Random(3).sample([u for u in users if len(catalog.history(u)) >= 3],
                                                     args.stream_users)
                    out["stream_recommend"] = stream_timings(svc.target, picked, args.stream_k)
                    print(json.dumps({"stream_recommend": out["stream_recommend"]}, indent=2), flush=True)
                    if args.compare:
                        out["stream_recommend_compared"] = compare_streams(args.compare, out["stream_recommend"])
                        print(json.dumps({"stream_recommend_compared": out["stream_recommend_compared"]},
                                         indent=2), flush=True)
            finally:
                svc.stop()
    catalog.close()
    out["speed"] = speed_summary(out)
    print(json.dumps({"speed": out["speed"]}, indent=2), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
