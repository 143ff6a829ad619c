"""The one recommend-and-justify pipeline: the gRPC server and the batch job give the same
justification for the same (user, item) pair, including for a shopper with a long history
(the server used to hand the explainer only the last 50 history items)."""
from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from explainer.batch.inputs import plan
from explainer.batch.worker import GroupWorker
from explainer.config import ExplainerConfig
from explainer.pipeline import RecommendPipeline
from explainer.service import Explainer
from ranker.types import RankQuery

LONG_USER = "pipeline-long-history-user"


def _batch(tmp_path, catalog, ranker, lines: list[dict], topk: int = 0) -> dict[str, dict]:
    """Runs the batch job's planner and worker (templates, as the server's llm=off) on the lines."""
    src = tmp_path / f"in-{topk}.jsonl"
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    p = plan(src, catalog, set(), topk=topk)
    assert not p.rejects, p.rejects
    worker = GroupWorker(catalog, ranker, Explainer.from_catalog(ExplainerConfig(enabled=False), catalog), use_llm=False)

    async def go():
        out = []
        for g in p.groups:
            records, rejects = await worker.run(g)
            assert not rejects, rejects
            out += records
        return out
    return {(r["user_id"], r["item_id"]): r for r in asyncio.run(go())}


@pytest.fixture(scope="module")
def long_history_user(template_server, server_catalog, server_ranker) -> tuple[str, str, str]:
    """A shopper whose 61-event history starts with an item X very close to a target item Y (same
    brand and category), followed by 60 items far from Y. Returns (user, X, Y)."""
    items = [i for i in server_catalog.all_items() if i.brand and i.category]
    by_key: dict[tuple[str, str], list] = {}
    for i in items:
        by_key.setdefault((i.brand, i.category), []).append(i)
    pair = next(v for v in by_key.values() if len(v) >= 2)
    x, y = pair[0], pair[1]
    vy = server_ranker.item_vector(y.id)
    far = sorted((i for i in items if i.brand != y.brand and i.category != y.category),
                 key=lambda i: float(server_ranker.item_vector(i.id) @ vy))[:60]
    with template_server.client() as c:
        assert c.record_events([(LONG_USER, x.id)] + [(LONG_USER, i.id) for i in far]) == 61
    assert len(server_catalog.history(LONG_USER)) == 61
    return LONG_USER, x.id, y.id


def test_server_and_batch_agree_for_a_long_history(tmp_path, template_server, server_catalog, server_ranker,
                                                   long_history_user):
    user, x, y = long_history_user
    with template_server.client() as c:
        reply = c.explain([y], user_id=user)
    assert len(reply.explanations) == 1
    online = reply.explanations[0].justification
    assert x in [e.item_id for e in reply.explanations[0].evidence], "the setup needs X among Y's evidence"
    assert x in online.evidence_ids, "the justification must be able to cite the oldest history item"
    batch = _batch(tmp_path, server_catalog, server_ranker, [{"user_id": user, "item_id": y}])[(user, y)]
    assert (online.source, list(online.evidence_ids), online.text, list(online.facts)) == \
        (batch["source"], batch["evidence_ids"], batch["text"], batch["facts"])


def test_server_and_batch_agree_on_pairs_and_topk(tmp_path, template_server, server_catalog, server_ranker):
    users = [u for u in server_catalog.user_ids() if len(server_catalog.history(u)) >= 4][:6]
    assert len(users) == 6
    with template_server.client() as c:
        ranked = {u: c.recommend(user_id=u, k=3, explain=True) for u in users}
        for u in users:
            assert len(ranked[u].items) == 3
        # explicit pairs: the items the server ranked, explained one call per user
        online = {(u, e.item.id): e.justification for u in users
                  for e in c.explain([it.item.id for it in ranked[u].items], user_id=u).explanations}
    assert len(online) == 18
    batch = _batch(tmp_path, server_catalog, server_ranker, [{"user_id": u, "item_id": i} for u, i in online])
    assert len(batch) == 18
    for key, j in online.items():
        b = batch[key]
        assert (j.source, list(j.evidence_ids), j.text) == (b["source"], b["evidence_ids"], b["text"]), key
    # top-k mode: the batch job's ranking and justifications are the server's Recommend(explain=True)
    topk = _batch(tmp_path, server_catalog, server_ranker, [{"user_id": u} for u in users], topk=3)
    for u in users:
        for it in ranked[u].items:
            b = topk[(u, it.item.id)]
            assert b["rank"] == it.rank
            j = it.justification
            assert (j.source, list(j.evidence_ids), j.text) == (b["source"], b["evidence_ids"], b["text"])


def test_pipeline_steps_compose(server_catalog, server_ranker):
    """prepare() is exactly its named steps, and the whole history reaches the facts step."""
    pipe = RecommendPipeline(server_catalog, server_ranker, Explainer.from_catalog(ExplainerConfig(enabled=False), server_catalog))
    user = next(u for u in server_catalog.user_ids() if len(server_catalog.history(u)) >= 5)
    q = RankQuery(user_id=user, k=4)
    prepared = pipe.prepare(q)
    recs = pipe.load_items(pipe.rank(q))
    history = pipe.load_history(q)
    assert [r.item.id for r in prepared.recommendations] == [r.item.id for r in recs]
    assert [h.id for h in prepared.history] == [h.id for h in history] == server_catalog.history(user)
    assert [f.lines for f in prepared.facts] == [f.lines for f in pipe.facts(history, recs)]
    assert pipe.prepare(q, justify=False).facts == ()
    recs_j, traces = asyncio.run(pipe.justify(prepared, use_llm=False))
    assert traces == [] and all(r.justification.text for r in recs_j)
    assert np.all([r.justification.item_id == r.item.id for r in recs_j])
