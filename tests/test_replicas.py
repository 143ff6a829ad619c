"""Two `explainrec serve` replicas on one PostgreSQL database (a throwaway cluster), zero-shot
ranker, no LLM: they share events, feedback and catalog changes; a round-robin client spreads
its calls over both and, when one is killed, is served by the other."""
from __future__ import annotations

import threading
import time

import grpc
import pytest

from tests.serve_process import ServeProcess

pytestmark = pytest.mark.slow


@pytest.fixture()
def two_replicas(small_pg, tmp_path):
    procs = []
    try:
        for name in ("a", "b"):    # started together: both run the migrations on one database
            procs.append(ServeProcess("--store", small_pg, "--workdir", str(tmp_path / name), "--zero-shot",
                                      "--no-llm", "--grace-s", "2"))
        yield [p.wait_serving() for p in procs]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.stop()


def _ids(reply) -> list[str]:
    return [it.item.id for it in reply.items]


def test_two_replicas_share_one_store_and_survive_one_dying(two_replicas, small_pg):
    from protos.explainrec.v1 import explainrec_pb2 as pb
    from server.client import ExplainRecClient
    from store.catalog import Catalog

    a, b = two_replicas
    store = Catalog(small_pg)
    try:
        user = next(u for u in store.user_ids() if len(store.history(u)) >= 5)
        seen = set(store.history(user))
        own_root = store.get_item(store.history(user)[-1]).category.split(" ")[:3]
        others = [i.id for i in store.all_items() if i.id not in seen
                  and i.category.split(" ")[:3] != own_root][:5]
    finally:
        store.close()

    with ExplainRecClient(a.target, timeout_s=30) as ca, ExplainRecClient(b.target, timeout_s=30) as cb:
        # the same store and the same model: the same answer from either replica
        before = _ids(cb.recommend(user_id=user, k=10))
        assert before == _ids(ca.recommend(user_id=user, k=10))

        # an event recorded through A changes B's next answer
        assert ca.record_events([(user, i, "purchase") for i in others]) == len(others)
        after = _ids(cb.recommend(user_id=user, k=10))
        assert after != before and not set(others) & set(after)   # bought items are not recommended again
        assert [e.item.id for e in cb.history(user, limit=len(others)).entries] == others[::-1]

        # feedback written through A is read through B: the same call repeated on B under the same
        # idempotency key returns A's row id, and B's own next row follows it in one sequence
        fid_a = ca.submit_feedback(user, others[0], "rating", helpful=True, reason="via A", idempotency_key="fb-1")
        assert cb.submit_feedback(user, others[0], "rating", helpful=True, reason="via A",
                                  idempotency_key="fb-1") == fid_a
        fid_b = cb.submit_feedback(user, others[1], "rating", helpful=False, reason="via B")
        assert fid_b == fid_a + 1

        # an item upserted through A becomes searchable on B (LISTEN/NOTIFY, then B encodes it)
        title = "Zorblax quantum flux capacitor calibration kit"
        ca.upsert_items([pb.Item(id="NEW-REPLICA-1", title=title, category="Lab Kits", brand="Zorblax")])
        t0 = time.monotonic()
        while "NEW-REPLICA-1" not in _ids(cb.recommend(query=title, k=5, category="Lab Kits")):
            assert time.monotonic() - t0 < 60, "the upserted item never reached replica B"
            time.sleep(0.1)

    # round robin over both replicas; then A dies mid-stream and B serves everything
    with ExplainRecClient(f"{a.target},{b.target}", timeout_s=30, retries=1) as client:
        client.wait_until_serving(timeout_s=60)
        a0, b0 = a.calls("Recommend"), b.calls("Recommend")
        for _ in range(40):
            client.recommend(user_id=user, k=5)
        spread = (a.calls("Recommend") - a0, b.calls("Recommend") - b0)
        assert sum(spread) == 40 and min(spread) >= 10, f"calls per replica: {spread}"

        failures: list[Exception] = []
        done = 0
        stop = threading.Event()

        def load() -> None:
            nonlocal done
            while not stop.is_set():
                try:
                    client.recommend(user_id=user, k=5)     # at most one retry (retries=1)
                    done += 1
                except grpc.RpcError as exc:
                    failures.append(exc)

        workers = [threading.Thread(target=load) for _ in range(4)]
        for w in workers:
            w.start()
        time.sleep(1.0)
        a.kill()
        killed_at = done
        time.sleep(3.0)
        stop.set()
        for w in workers:
            w.join(30)
        assert not failures, f"{len(failures)} calls failed after their retry: {failures[:3]}"
        assert done > killed_at + 10        # B kept answering after A died
