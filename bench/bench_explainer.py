"""Prefix-cache effect on the explainer's prompts, measured in one run on one vLLM server.

The same requests (U shoppers x K items, all in flight together) are sent twice:
  item_first: the item block before the history, so items of one shopper share only the instructions
  shared:     instructions, then history, then the item (the explainer's layout): the items share a prefix
Every request generates exactly --max-tokens tokens (ignore_eos, no stop), so output tokens/s compare.
The item-first pass runs first, so the shared pass gains nothing from its cache beyond the instructions.

  python bench/bench_explainer.py                      # starts a local eager server
  python bench/bench_explainer.py --url http://host:8000
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from pathlib import Path

from explainer.client import VLLMClient
from explainer.config import ExplainerConfig
from explainer.service import Explainer
from explainer.vllm_server import LocalVLLMServer
from ranker.types import Candidate, HistoryEvidence
from store.catalog import Catalog
from store.history import history_items
from store.paths import db_path, default_workdir


def build_requests(catalog: Catalog, users: int, k: int, seed: int, min_history: int):
    rng = random.Random(seed)
    ids = [u for u in catalog.user_ids()]
    rng.shuffle(ids)
    items = catalog.all_items()
    out = []
    for u in ids:
        hist = history_items(catalog, catalog.history(u), u)
        if len(hist) < min_history:
            continue
        picks = rng.sample(items, k)
        out.append((hist, [(it, Candidate(it.id, 0.5, (HistoryEvidence(hist[-1].id, 0.5),))) for it in picks]))
        if len(out) == users:
            break
    return out


async def run_layout(ex: Explainer, client: VLLMClient, requests, item_first: bool, max_tokens: int) -> dict:
    prompts = []
    for hist, pairs in requests:
        names = ex.history_names(hist)
        for f in ex.facts(hist, pairs):
            prompts.append(ex.prompt.render(names, f, item_first=item_first).messages)
    extra = {"ignore_eos": True, "stop": []}
    t0 = time.perf_counter()
    comps = await asyncio.gather(*(client.chat(m, n=1, max_tokens=max_tokens, temperature=0.0, timeout_s=600,
                                               extra=extra) for m in prompts))
    wall = time.perf_counter() - t0
    out_tok = sum(c.completion_tokens for c in comps)
    in_tok = sum(c.prompt_tokens for c in comps)
    return {"requests": len(prompts), "prompt_tokens": in_tok, "output_tokens": out_tok, "wall_s": round(wall, 2),
            "output_tokens_per_s": round(out_tok / wall, 1), "total_tokens_per_s": round((in_tok + out_tok) / wall, 1)}


async def main_async(args) -> dict:
    catalog = Catalog(db_path(args.workdir))
    server = None
    url = args.url
    if not url:
        server = LocalVLLMServer(ExplainerConfig(workdir=args.workdir, enforce_eager=not args.compiled)).start()
        url = server.url
    try:
        ex = Explainer.from_catalog(ExplainerConfig(vllm_url=url), catalog)
        client = VLLMClient(url, concurrency=args.concurrency, timeout_s=600)
        requests = build_requests(catalog, args.users, args.k, args.seed, args.min_history)
        await run_layout(ex, client, requests[:1], True, 4)   # warm-up (first-call overheads), other shopper
        requests = requests[1:] if len(requests) > 1 else requests
        item_first = await run_layout(ex, client, requests, True, args.max_tokens)
        shared = await run_layout(ex, client, requests, False, args.max_tokens)
        await client.aclose()
        await ex.aclose()
    finally:
        if server:
            server.stop()
        catalog.close()
    return {"server": "given URL" if args.url else ("local compiled" if args.compiled else "local eager"),
            "users": len(requests), "k": args.k, "max_tokens": args.max_tokens,
            "item_first": item_first, "shared_prefix": shared,
            "ratio_output_tokens_per_s": round(shared["output_tokens_per_s"] / item_first["output_tokens_per_s"], 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="", help="a running vLLM server (default: start a local one)")
    p.add_argument("--workdir", type=Path, default=default_workdir())
    p.add_argument("--users", type=int, default=9, help="shoppers (the first is the warm-up)")
    p.add_argument("--k", type=int, default=8, help="items per shopper")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--min-history", type=int, default=8, help="shoppers with at least this many purchases")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="which shoppers and items (not sent to vLLM)")
    p.add_argument("--compiled", action="store_true", help="local server without --enforce-eager")
    args = p.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
