"""The service with the real SmolLM2 under vLLM (the session's `vllm_server`)."""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


@pytest.fixture(scope="module")
def client(llm_server):
    with llm_server.client(timeout_s=120) as c:
        yield c


def test_recommend_with_llm_justifications(client, some_user, server_catalog):
    reply = client.recommend(user_id=some_user, k=3, explain=True)
    assert len(reply.items) == 3
    history = set(server_catalog.history(some_user))
    for it in reply.items:
        j = it.justification
        assert j.text and j.template and j.facts
        assert set(j.evidence_ids) <= history
        # the LLM was asked: either its text passed the verifier, or the verifier rejected every sample
        assert (j.source, j.fallback_reason) in {("llm", ""), ("template", "verifier")}, (j.source, j.fallback_reason)
        if j.source == "llm":
            assert j.model


def test_stream_recommend_order_ranked_then_chunks_then_finals(client, some_user):
    messages = list(client.stream_recommend(user_id=some_user, k=3, timeout_s=120))
    kinds = [m.WhichOneof("event") for m in messages]
    assert kinds[0] == "ranked" and kinds.count("ranked") == 1
    ranked = [it.item.id for it in messages[0].ranked.items]
    assert len(ranked) == 3
    assert "chunk" in kinds, "the LLM's tokens are streamed before the finals"
    finals: dict[str, object] = {}
    for m in messages[1:]:
        if m.WhichOneof("event") == "chunk":
            assert m.chunk.item_id in ranked and m.chunk.item_id not in finals, "no chunk after its item's final"
        else:
            assert m.final.item_id not in finals
            finals[m.final.item_id] = m.final.justification
    assert set(finals) == set(ranked)
    assert all(j.text for j in finals.values())


def test_short_deadline_gives_template_justifications_not_an_error(client, some_user, llm_server):
    budget = llm_server.config.min_llm_budget_s   # less than this left: no LLM call
    reply = client.recommend(user_id=some_user, k=3, explain=True, timeout_s=budget * 0.9)
    assert len(reply.items) == 3
    for it in reply.items:
        assert it.justification.source == "template" and it.justification.fallback_reason == "deadline"
        assert it.justification.text
    stream = list(client.stream_recommend(user_id=some_user, k=2, timeout_s=budget * 0.9))
    finals = [m.final.justification for m in stream if m.WhichOneof("event") == "final"]
    assert len(finals) == 2 and all(j.fallback_reason == "deadline" for j in finals)
