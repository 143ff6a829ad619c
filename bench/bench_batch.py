"""Bench: the explain-batch job vs vLLM alone on the same requests, in one run.

    python bench/bench_batch.py [--users 24] [--items-per-user 4] [--concurrency 32] [--ray] [--vllm-url URL]

1. Pairs: the first --users users of the catalog, each with the ranker's top --items-per-user.
2. The job (local engine: ranker evidence, Explainer, verifier, fsync'ed journal) runs over
   them; every HTTP request it sends to vLLM is recorded on the way out (httpx send hook).
3. vLLM alone: the recorded request bodies are replayed straight to the server with the
   same number in flight, nothing else running.
Output tokens come from the server's own counter (/metrics, vllm:generation_tokens_total)
for both runs. The prefix cache is reset before each timed run (the local server is started
with VLLM_SERVER_DEV_MODE=1 for /reset_prefix_cache), so neither run is served from the
other's cache. Prints explanations/s and output tokens/s for both and their ratio.
4. With --ray: the same pairs once more on the Ray engine (local Ray, one actor).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

log = logging.getLogger("bench_batch")


def server_counter(url: str, name: str) -> float:
    import httpx
    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(float(m.group(1)) for m in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})?\s+([0-9.eE+-]+)$",
                                                         text, re.M))


def reset_prefix_cache(url: str) -> bool:
    import httpx
    try:
        return httpx.post(url + "/reset_prefix_cache", timeout=30).status_code == 200
    except httpx.HTTPError:
        return False


class Recorder:
    """Records (path, JSON body) of every completion request any httpx client sends."""

    def __init__(self):
        self.requests: list[tuple[str, bytes]] = []
        self.on = False

    def install(self) -> None:
        import httpx
        original = httpx.AsyncClient.send
        rec = self

        async def send(client, request, *a, **kw):
            if rec.on and request.url.path.endswith("completions"):
                rec.requests.append((request.url.path, request.content))
            return await original(client, request, *a, **kw)

        httpx.AsyncClient.send = send


async def replay(url: str, requests: list[tuple[str, bytes]], concurrency: int) -> int:
    """vLLM alone: the same bodies, the same number in flight. Returns the failures."""
    import httpx
    sem = asyncio.Semaphore(concurrency)
    failures = 0
    async with httpx.AsyncClient(base_url=url, timeout=600,
                                 limits=httpx.Limits(max_connections=concurrency * 2)) as client:
        async def one(path, body):
            nonlocal failures
            async with sem:
                r = await client.post(path, content=body, headers={"content-type": "application/json"})
                if r.status_code != 200:
                    failures += 1
        await asyncio.gather(*(one(p, b) for p, b in requests))
    return failures


def make_pairs(catalog, ranker, users: int, per_user: int, path: Path) -> int:
    from ranker.types import RankQuery
    rows = []
    for u in catalog.user_ids():
        if len(rows) >= users * per_user:
            break
        for c in ranker.recommend(RankQuery(user_id=u, k=per_user)):
            rows.append({"user_id": u, "item_id": c.item_id})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def run_ray_job(args, spec, url: str, tmp: Path) -> dict:
    """The same pairs on the Ray engine (1 actor); wall time includes the actor's start-up
    (it builds its own ranker), Ray itself is started before the clock, on loopback only
    (the same settings as ray_engine.run_ray's local Ray)."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")   # read when ray is imported
    import ray

    from explainer.batch.inputs import plan
    from explainer.batch.journal import Journal
    from explainer.batch.ray_engine import run_ray
    from explainer.batch.runner import Sink
    from store.catalog import Catalog

    ray.init(num_cpus=2, object_store_memory=100 * 1024 * 1024, include_dashboard=False,
             log_to_driver=False, logging_level=logging.WARNING, _node_ip_address="127.0.0.1")
    try:
        cat = Catalog(spec.db_path)
        reset_prefix_cache(url)
        tok0 = server_counter(url, "vllm:generation_tokens_total")
        t0 = time.perf_counter()
        with Journal(tmp / "ray.jsonl") as j:
            work = plan(tmp / "pairs.jsonl", cat, j.done, max_group=args.max_group)
            sink = Sink(j, tmp / "ray.rejects.jsonl", "pairs")
            run_ray(work.groups, spec, sink, concurrency=args.concurrency)
        seconds = time.perf_counter() - t0
        cat.close()
        return dict(written=sink.written, seconds=seconds,
                    tokens=server_counter(url, "vllm:generation_tokens_total") - tok0)
    finally:
        ray.shutdown()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--users", type=int, default=24)
    ap.add_argument("--items-per-user", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--max-group", type=int, default=16)
    ap.add_argument("--n-samples", type=int, default=None, help="explainer samples per item (default: its own)")
    ap.add_argument("--ray", action="store_true", help="also run the job on the Ray engine (local Ray, 1 actor)")
    ap.add_argument("--vllm-url", default="", help="use a running server (no cache resets unless it allows them)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    from explainer.batch.inputs import plan
    from explainer.batch.journal import Journal
    from explainer.batch.runner import Sink, run_local
    from explainer.batch.worker import WorkerSpec, build_worker
    from explainer.config import ExplainerConfig
    from store.paths import db_path, default_workdir, model_dir

    workdir = Path(args.workdir or default_workdir())
    server = None
    url = args.vllm_url
    if not url:
        from explainer.vllm_server import LocalVLLMServer
        os.environ["VLLM_SERVER_DEV_MODE"] = "1"      # enables /reset_prefix_cache
        server = LocalVLLMServer(ExplainerConfig(workdir=workdir)).start()
        url = server.url
    try:
        rec = Recorder()
        rec.install()
        tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
        ranker_dir = str(model_dir(workdir)) if model_dir(workdir).exists() else ""
        overrides = {"concurrency": args.concurrency, "request_timeout_s": 300.0}
        if args.n_samples:
            overrides["n_samples"] = args.n_samples
        spec = WorkerSpec(db_path=str(db_path(workdir)), ranker_dir=ranker_dir, vllm_urls=(url,),
                          explainer_overrides=overrides)

        async def job() -> dict:
            worker, aclose = build_worker(spec)
            try:
                pairs = tmp / "pairs.jsonl"
                n_pairs = make_pairs(worker.catalog, worker.ranker, args.users, args.items_per_user, pairs)
                # warm-up on other users (not timed): first-call costs out of the measurement
                warm = tmp / "warm.jsonl"
                uid = worker.catalog.user_ids()[args.users + 1]
                warm.write_text(json.dumps({"user_id": uid, "item_id": worker.catalog.history(uid)[-1]}) + "\n")
                with Journal(tmp / "warm.out.jsonl") as j:
                    await run_local(plan(warm, worker.catalog, j.done).groups, worker,
                                    Sink(j, tmp / "warm.rej", str(warm)), args.concurrency)

                cache_reset = reset_prefix_cache(url)
                tok0 = server_counter(url, "vllm:generation_tokens_total")
                rec.on = True
                t0 = time.perf_counter()
                with Journal(tmp / "out.jsonl") as j:
                    work = plan(pairs, worker.catalog, j.done, max_group=args.max_group)
                    sink = Sink(j, tmp / "rejects.jsonl", str(pairs))
                    await run_local(work.groups, worker, sink, args.concurrency)
                seconds = time.perf_counter() - t0
                rec.on = False
                tokens = server_counter(url, "vllm:generation_tokens_total") - tok0
                recs = [json.loads(x) for x in (tmp / "out.jsonl").read_text().splitlines()]
                llm = sum(r["source"] == "llm" for r in recs)
                return dict(pairs=n_pairs, written=sink.written, seconds=seconds, tokens=tokens,
                            llm=llm, cache_reset=cache_reset)
            finally:
                await aclose()

        j = asyncio.run(job())
        n_req = len(rec.requests)
        cache_reset = reset_prefix_cache(url)
        tok0 = server_counter(url, "vllm:generation_tokens_total")
        t0 = time.perf_counter()
        failures = asyncio.run(replay(url, rec.requests, args.concurrency))
        alone_s = time.perf_counter() - t0
        alone_tokens = server_counter(url, "vllm:generation_tokens_total") - tok0
        ray_result = run_ray_job(args, spec, url, tmp) if args.ray else None
    finally:
        if server is not None:
            server.stop()

    job_eps, job_tps = j["written"] / j["seconds"], j["tokens"] / j["seconds"]
    alone_eps, alone_tps = j["written"] / alone_s, alone_tokens / alone_s
    result = {
        "pairs": j["pairs"], "explanations": j["written"], "from_llm": j["llm"], "llm_requests": n_req,
        "concurrency": args.concurrency, "prefix_cache_reset": j["cache_reset"] and cache_reset,
        "job": {"seconds": round(j["seconds"], 2), "explanations_per_s": round(job_eps, 2),
                "output_tokens": int(j["tokens"]), "output_tokens_per_s": round(job_tps, 1)},
        "vllm_alone": {"seconds": round(alone_s, 2), "explanations_per_s": round(alone_eps, 2),
                       "output_tokens": int(alone_tokens), "output_tokens_per_s": round(alone_tps, 1),
                       "failed_requests": failures},
        "ratio_explanations_per_s": round(job_eps / alone_eps, 3),
        "ratio_output_tokens_per_s": round(job_tps / alone_tps, 3) if alone_tps else None,
    }
    if ray_result:
        r_eps, r_tps = ray_result["written"] / ray_result["seconds"], ray_result["tokens"] / ray_result["seconds"]
        result["ray"] = {"seconds_incl_startup": round(ray_result["seconds"], 2),
                         "explanations_per_s": round(r_eps, 2), "output_tokens_per_s": round(r_tps, 1),
                         "ratio_output_tokens_per_s": round(r_tps / alone_tps, 3) if alone_tps else None}
    print(json.dumps(result, indent=2))
    print(f"job: {job_eps:.2f} expl/s, {job_tps:.1f} out tok/s | vLLM alone: {alone_eps:.2f} expl/s, "
          f"{alone_tps:.1f} out tok/s | ratio {result['ratio_output_tokens_per_s']} (tokens/s), "
          f"{result['ratio_explanations_per_s']} (expl/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
