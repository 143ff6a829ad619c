"""The Ray engine: the same GroupWorker inside Ray Data actors, the driver as the one writer.

Why map_batches over vLLM endpoints rather than Ray Data's LLM processor: the processor
builds prompts from a fixed template and returns raw text, which would bypass the
Explainer (facts, prompt files, verifier, template fallback) and so break the output
contract. Here each actor builds its own catalog + ranker + Explainer once (a callable
class, so the model loads once per actor, not per batch) and talks to an OpenAI-compatible
vLLM endpoint (`--vllm-url` may be given several times; actor i uses url i mod n), with the
same bounded-concurrency loop and per-user grouping as the local engine. Scale-out = more
actors and more vLLM replicas.

Why only the driver writes: the journal's exactly-once argument (journal.py) needs a
single appender. Per-block files would need a merge with the same dedupe on every
restart and an atomic publish step; the rows here are small JSON lines, so streaming them
back to the driver (iter_batches) costs little and keeps one recovery path for both
engines. Killing the driver kills a local Ray cluster with it; a rerun skips done keys.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from typing import Any

import numpy as np

from explainer.batch.inputs import Group, Row
from explainer.batch.runner import Sink, run_groups
from explainer.batch.worker import WorkerSpec

log = logging.getLogger(__name__)

# passed to workers on a remote cluster (a local cluster inherits the driver's environment)
FORWARD_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "EXPLAINREC_HOME", "EXPLAINREC_DATA")


def group_to_json(g: Group) -> str:
    return json.dumps({"u": g.user_id, "k": g.topk,
                       "rows": [[r.key, r.item_id, r.line, r.rank] for r in g.rows]})


def group_from_json(s: str) -> Group:
    d = json.loads(s)
    return Group(d["u"], [Row(key, d["u"], item, line, rank) for key, item, line, rank in d["rows"]], topk=d["k"])


class ExplainActor:
    """A Ray Data callable class: builds its worker once, then justifies batches of groups."""

    def __init__(self, spec: WorkerSpec, concurrency: int):
        from explainer.batch.worker import build_worker
        import ray

        # spread actors over the endpoints: a stable small number per actor
        index = int(ray.get_runtime_context().get_actor_id()[-6:], 16) if spec.vllm_urls else 0
        # One event loop per actor, in its own thread: the explainer's HTTP client lives on it,
        # and the two batches Ray runs on this actor at once (max_concurrent_calls_per_actor) share it, so the
        # next batch is already in flight while the last one drains.
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="explain-loop", daemon=True)
        self._thread.start()
        self.concurrency = concurrency
        self.worker, self._aclose = build_worker(spec, index)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        kinds: list[str] = []
        payload: list[str] = []

        def on_result(records, rejects):
            for r in records:
                kinds.append("record")
                payload.append(json.dumps(r, ensure_ascii=False))
            for row, reason in rejects:
                kinds.append("reject")
                payload.append(json.dumps({"key": row.key, "line": row.line, "reason": reason}))

        groups = [group_from_json(s) for s in batch["group"]]
        asyncio.run_coroutine_threadsafe(
            run_groups(groups, self.worker.run, on_result, self.concurrency), self.loop).result()
        return {"kind": np.array(kinds, dtype=object), "json": np.array(payload, dtype=object)}


def run_ray(groups: list[Group], spec: WorkerSpec, sink: Sink, address: str = "", workers: int = 1,
            concurrency: int = 32, groups_per_batch: int = 0, num_cpus: int = 2,
            object_store_mb: int = 100) -> None:
    """Justify `groups` on Ray Data; the driver appends results to `sink` as blocks arrive."""
    if not address:
        # A local Ray stays on loopback: Ray resolves "127.0.0.1" to the machine's routable
        # address unless cluster mode is off, which it reads when it is first imported.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        common = dict(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False,
                      logging_level=logging.WARNING)
        if address:
            env = {k: os.environ[k] for k in FORWARD_ENV if k in os.environ}
            ray.init(address=address, runtime_env={"env_vars": env} if env else None, **common)
        else:
            # small on purpose: this machine is shared; the actors mostly wait on vLLM
            # Loopback only: a local Ray must not bind or dial the machine's network address.
            ray.init(num_cpus=num_cpus, object_store_memory=object_store_mb * 1024 * 1024,
                     _node_ip_address="127.0.0.1", **common)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False   # the driver shows one tqdm bar over keys
        rows = [{"group": group_to_json(g)} for g in groups]
        if not groups_per_batch:
            # about `concurrency` items per batch, whatever the group sizes
            mean = sum(len(g.rows) for g in groups) / max(1, len(groups))
            groups_per_batch = max(1, round(concurrency / max(1.0, mean)))
        blocks = max(1, min(len(rows) // groups_per_batch, 1000))
        ds = ray.data.from_items(rows, override_num_blocks=blocks)
        ds = ds.map_batches(ExplainActor, fn_constructor_kwargs={"spec": spec, "concurrency": concurrency},
                            batch_size=groups_per_batch, num_cpus=1,
                            compute=ray.data.ActorPoolStrategy(size=workers, max_concurrent_calls_per_actor=2,
                                                               enable_true_multi_threading=True),
                            batch_format="numpy")
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                records, rejects = [], []
                for kind, text in zip(batch["kind"], batch["json"]):
                    d = json.loads(text)
                    if kind == "record":
                        records.append(d)
                    else:
                        rejects.append((Row(d["key"], "", "", d["line"]), d["reason"]))
                sink.add(records, rejects)
        finally:
            sink.flush()
    finally:
        if started_here:
            ray.shutdown()
