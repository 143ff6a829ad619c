"""`explainrec eval-explanations`: justification quality on test users of the Scientific data.

Two views: the LLM path before any fallback (per item, the best of the n samples: the
passing one that would be returned, else the one with fewest failed rules) and what is finally
returned. USR and DIV follow PETER (Li et al., ACL 2021): USR = distinct sentences / all;
DIV = mean over pairs of the number of shared features, features being the item attributes
(brand, category) a text names; lower DIV = more diverse.

link_rate: the share of texts whose reason states a supported link, or that honestly give none
where the facts have none (Verdict.linked). name_failures: names that are not clean noun phrases
(explainer.names.name_problem) plus names shared by two different products of one reply.
no_history_link_rate: the share of texts tied to nothing the shopper did: no stated link with a
history item and no weak reason naming one ("You may like the Trash Dolly from Dollies by
Rubbermaid"; explainer.links.weak_reason). weak_reason_share: items whose only reason is a weak one.
rule_failures: per verifier rule, how many texts it fails. label_agreement: how often the
verifier's pass/fail agrees with hand labels (tests/data/explanations_labelled.jsonl).
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import asdict
from itertools import combinations
from pathlib import Path
from typing import Sequence

import numpy as np

from explainer.actions import wording_mismatch
from explainer.attributes import states_link
from explainer.config import ExplainerConfig
from explainer.labels import DEFAULT_LABELS, agreement, load_labels
from explainer.names import duplicate_names, name_problem
from explainer.pipeline import Prepared, RecommendPipeline
from explainer.service import Explainer, Sample, Trace
from explainer.types import SOURCE_LLM, Justification
from explainer.verifier import HALLUCINATION_RULES, RULES, mentions
from explainer.vllm_server import LocalVLLMServer
from ranker.service import Ranker
from ranker.types import RankQuery
from store.catalog import Catalog
from store.history import history_items
from store.paths import model_dir, store_location

log = logging.getLogger(__name__)


def usr(texts: Sequence[str]) -> float:
    return len({t.strip().lower() for t in texts}) / len(texts) if texts else 0.0


def div(feature_sets: Sequence[frozenset]) -> float:
    """PETER's DIV: mean |F_i ∩ F_j| over all pairs."""
    n = len(feature_sets)
    if n < 2:
        return 0.0
    total = sum(len(a & b) for a, b in combinations(feature_sets, 2))
    return total / (n * (n - 1) / 2)


def features(text: str, facts) -> frozenset:
    low = text.lower()
    return frozenset(f"{kind}:{v.lower()}" for kind, v in
                     (("brand", facts.brand), ("category", facts.category), ("category", facts.shared_category))
                     if v and v.lower() in low)


def best_sample(samples: Sequence[Sample]) -> Sample | None:
    if not samples:
        return None
    return min(samples, key=lambda s: (len(s.verdict.failed), not s.verdict.mentions_attribute,
                                       s.verdict.unsupported_share))


def _pct(xs: Sequence[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else 0.0


def name_failures(replies: Sequence[Sequence[object]]) -> int:
    """Bad names plus names two different products share, over each reply's items and anchors."""
    bad = 0
    for facts in replies:
        # anchors that share a name are one product listed twice (explainer.facts names them alike on purpose)
        anchors = {f.anchor_name: f.anchor_id for f in facts if f.anchor_id}
        pairs = {(f.item_id, f.item_name) for f in facts} | {(i, n) for n, i in anchors.items()}
        bad += sum(1 for _, n in pairs if name_problem(n)) + duplicate_names(pairs)
    return bad


def history_linked(text: str, verdict, facts) -> bool:
    """The text ties the item to the shopper's history: it states a link with the cited history item,
    or the weak reason with the history item it names."""
    return bool(verdict.links_stated) or bool(facts.reason and facts.reason_name and mentions(text, facts.reason_name)) \
        or (facts.reason == "model_history" and "our model" in text.lower())


def text_metrics(rows: list[tuple[str, object, object]]) -> dict:
    """rows: (text, verdict, facts)."""
    if not rows:
        return {"count": 0}
    texts = [t for t, _, _ in rows]
    verdicts = [v for _, v, _ in rows]
    return {
        "count": len(rows),
        "link_rate": sum(v.linked for v in verdicts) / len(rows),
        "no_history_link_rate": sum(not history_linked(t, v, f) for t, v, f in rows) / len(rows),
        "weak_reason_share": sum(bool(f.reason) for _, _, f in rows) / len(rows),
        "rule_failures": {r: sum(r in v.failed for v in verdicts) for r in RULES},
        "pass_rate": sum(v.ok for v in verdicts) / len(rows),
        "hallucination_rate": sum(any(r in v.failed for r in HALLUCINATION_RULES) for v in verdicts) / len(rows),
        "coverage": sum(v.mentions_history and v.mentions_attribute for v in verdicts) / len(rows),
        "usr": usr(texts),
        "div": div([features(t, f) for t, _, f in rows]),
        "mean_length_words": float(np.mean([len(t.split()) for t in texts])),
        # the stated action differs from the recorded event (explainer.actions.wording_mismatch)
        "wording_mismatches": sum(wording_mismatch(t, f) for t, _, f in rows),
        # texts that state an attribute value the item shares with the cited history item, and the
        # share of items that had such a link to state
        "attribute_link_rate": sum(states_link(t, f) for t, _, f in rows) / len(rows),
        "attribute_link_available": sum(bool(f.shared_values) for _, _, f in rows) / len(rows),
        "failed_rule_counts": {r: sum(r in v.failed for v in verdicts)
                               for r in sorted({r for v in verdicts for r in v.failed})},
    }


def pick_users(catalog, n: int, seed: int) -> list[str]:
    seqs = catalog.sequences(("train", "valid", "test"))
    users = sorted(u for u, s in seqs.items() if len(s) >= 3)
    random.Random(seed).shuffle(users)
    return users[:n]


def build_requests(pipeline: RecommendPipeline, catalog, users: Sequence[str], k: int) -> list[tuple[str, Prepared]]:
    """(user, pipeline steps 1-4) per user: the user's train+valid history given inline (it stops
    before the test item, and carries the user's event kinds there), the top k of the ranker, their facts."""
    seqs = catalog.sequences(("train", "valid", "test"))
    requests = []
    for u in users:
        hist_ids = [i for i, split in seqs[u] if split != "test"]
        query = RankQuery(history=tuple(hist_ids), k=k)
        recs = pipeline.load_items(pipeline.rank(query))
        history = history_items(catalog, hist_ids, u, ("train", "valid"))
        requests.append((u, pipeline.ground(query, recs, history)))
    return requests


async def evaluate(pipeline: RecommendPipeline, requests: Sequence[tuple[str, Prepared]], k: int, parallel: int = 4,
                   deadline_s: float | None = None) -> tuple[dict, list[dict]]:
    explainer = pipeline.explainer
    sem = asyncio.Semaphore(parallel)
    results: list = [None] * len(requests)

    async def run(i):
        u, prepared = requests[i]
        async with sem:
            t0 = time.perf_counter()
            recs, traces = await pipeline.justify(prepared, use_llm=True, deadline_s=deadline_s)
            outs = [r.justification for r in recs]
            results[i] = (u, list(prepared.history), outs, traces, time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(run(i) for i in range(len(requests))))
    wall = time.perf_counter() - t0

    llm_rows, ret_rows, cases = [], [], []
    item_lat, req_lat, tokens, sample_ok, sample_n, unavailable = [], [], 0, 0, 0, 0
    for u, hist, outs, traces, secs in results:
        req_lat.append(secs)
        for j, tr in zip(outs, traces):
            tokens += tr.completion_tokens
            if tr.samples:
                item_lat.append(tr.latency_s)
                sample_ok += sum(s.verdict.ok for s in tr.samples)
                sample_n += len(tr.samples)
                chosen = next((s for s in tr.samples if j.source == SOURCE_LLM and s.text == j.text), None) \
                    or best_sample(tr.samples)
                llm_rows.append((chosen.text, chosen.verdict, tr.facts))
            else:
                unavailable += 1
            verdict = explainer.verify(j.text, tr.facts, hist)
            ret_rows.append((j.text, verdict, tr.facts))
            cases.append(_case(u, j, tr, verdict, hist))
    llm = text_metrics(llm_rows)
    names = name_failures([[tr.facts for tr in traces] for _, _, _, traces, _ in results])
    llm["name_failures"] = names
    llm["sample_pass_rate"] = sample_ok / sample_n if sample_n else 0.0
    llm["items_without_llm_answer"] = unavailable
    ret = text_metrics(ret_rows)
    ret["grounded_rate"] = ret.pop("pass_rate", 0.0)
    ret["name_failures"] = names
    ret["llm_share"] = sum(j.source == SOURCE_LLM for _, _, outs, _, _ in results for j in outs) / max(1, len(ret_rows))
    report = {
        "users": len(requests), "k": k, "items": len(ret_rows),
        "model": explainer.client.model if explainer.client else "",
        "prompt_template": explainer.prompt.id, "n_samples": explainer.config.n_samples,
        "temperature": explainer.config.temperature, "max_tokens": explainer.config.max_tokens,
        "llm": llm, "returned": ret,
        "latency_s": {"item_p50": _pct(item_lat, 50), "item_p95": _pct(item_lat, 95),
                      "request_p50": _pct(req_lat, 50), "request_p95": _pct(req_lat, 95)},
        "output_tokens": tokens, "wall_s": wall, "output_tokens_per_s": tokens / wall if wall else 0.0,
    }
    return report, cases


def _case(user: str, j: Justification, tr: Trace, verdict, hist) -> dict:
    return {
        "user_id": user, "item_id": j.item_id, "facts": list(tr.facts.lines),
        "item_facts": asdict(tr.facts), "history_titles": [h.title for h in hist],
        "samples": [{"text": s.text, "failed": list(s.verdict.failed), "finish_reason": s.finish_reason}
                    for s in tr.samples],
        "returned": j.text, "source": j.source, "template": j.template, "fallback_reason": j.fallback_reason,
        "verdict": "pass" if verdict.ok else "fail", "failed_rules": list(verdict.failed or j.failed_rules),
    }


def run_from_args(args, workdir: Path) -> dict:
    catalog = Catalog(store_location(workdir, getattr(args, "store", None)))
    try:
        try:
            ranker = Ranker.load(model_dir(workdir), catalog)
            ranker_kind = "trained"
        except FileNotFoundError:
            ranker = Ranker.zero_shot(catalog)
            ranker_kind = "zero_shot"
        overrides = {"workdir": workdir}
        if args.vllm_url:
            overrides["vllm_url"] = args.vllm_url
        if args.n_samples:
            overrides["n_samples"] = args.n_samples
        if args.template:
            overrides["prompt_template"] = args.template
        cfg = ExplainerConfig.from_env(**overrides)
        server = None
        if not cfg.vllm_url:
            server = LocalVLLMServer(cfg).start()
            cfg.vllm_url = server.url
            cfg.model = server.model_name
        try:
            explainer = Explainer.from_catalog(cfg, catalog)
            users = pick_users(catalog, args.users, args.seed)

            async def go():
                try:
                    pipeline = RecommendPipeline(catalog, ranker, explainer)
                    return await evaluate(pipeline, build_requests(pipeline, catalog, users, args.k), args.k)
                finally:
                    await explainer.aclose()
            report, cases = asyncio.run(go())
        finally:
            if server is not None:
                server.stop()
        report["ranker"] = ranker_kind
        labels = Path(getattr(args, "labels", None) or DEFAULT_LABELS)
        if labels.exists():   # how often the verifier agrees with a shopper's reading
            report["label_agreement"] = agreement(explainer.verifier, load_labels(labels))
            log.info("verifier agreement with %d hand labels: %.3f", report["label_agreement"]["count"],
                     report["label_agreement"]["rate"])
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(report, indent=2))
        if getattr(args, "cases", None):
            Path(args.cases).parent.mkdir(parents=True, exist_ok=True)
            Path(args.cases).write_text(json.dumps(cases, indent=1))
        if args.audit:
            picked = random.Random(args.seed + 1).sample(cases, min(50, len(cases)))
            Path(args.audit).parent.mkdir(parents=True, exist_ok=True)
            Path(args.audit).write_text(json.dumps(picked, indent=2))
        return report
    finally:
        catalog.close()
