"""The Ranker on the real small catalog: evidence, cold start, queries, filters, errors.

Each test that depends on the vectors runs twice: on the fake encoder (fast tier) and on the real
MiniLM (marked slow), so what the fast tier checks is also checked on the real model."""
from __future__ import annotations

import numpy as np
import pytest

from ranker.index import IndexConfig, VectorIndex
from ranker.service import Ranker, RankerConfig
from ranker.types import RankQuery
from store.catalog import Event, Item
from store.errors import InvalidInput, UnknownItem, UnknownUser

SANDING_80 = "B0000223SI"    # PORTER-CABLE 80 grit adhesive-backed sanding roll
SANDING_120 = "B0000223SK"   # PORTER-CABLE 120 grit, same category
GLUE = "B0000223UV"          # Gorilla Glue

ENCODERS = ["fake_encoder", pytest.param("minilm_encoder", marks=pytest.mark.slow)]


@pytest.fixture(scope="module", params=["zero_shot_ranker", pytest.param("minilm_ranker", marks=pytest.mark.slow)])
def ranker(request):
    """The shared zero-shot ranker on the fake encoder, then on the real MiniLM (slow)."""
    return request.getfixturevalue(request.param)


@pytest.fixture(params=ENCODERS)
def ranker_encoder(request):
    return request.getfixturevalue(request.param)


def test_evidence_cites_most_similar_history_item_and_shared_brand(ranker):
    q = RankQuery(history=(GLUE, SANDING_80), k=5)
    [cand] = ranker.score_items(q, [SANDING_120])
    assert cand.evidence[0].item_id == SANDING_80
    assert cand.evidence[0].similarity > cand.evidence[1].similarity
    assert "brand" in cand.evidence[0].shared and "category" in cand.evidence[0].shared
    glue = next(e for e in cand.evidence if e.item_id == GLUE)
    assert "brand" not in glue.shared


def test_category_parent_when_only_the_leaf_differs(ranker, ranker_catalog):
    from ranker.evidence import shared_category
    a = "Industrial & Scientific Abrasive & Finishing Products Manual Sanding Products Sanding Rolls"
    b = "Industrial & Scientific Abrasive & Finishing Products Abrasive Wheels & Discs"
    kind, words = shared_category(a, b, ranker.root_levels)
    assert kind == "category_parent" and words == "Industrial & Scientific Abrasive & Finishing Products"
    assert shared_category(a, "Industrial & Scientific Lab Supplies", ranker.root_levels) == ("", "")


def test_recommend_for_stored_user_excludes_history_and_follows_new_events(ranker, ranker_catalog):
    user = ranker_catalog.user_ids()[0]
    history = set(ranker_catalog.history(user))
    recs = ranker.recommend(RankQuery(user_id=user, k=20))
    assert len(recs) == 20 and not history & {c.item_id for c in recs}
    assert [c.score for c in recs] == sorted((c.score for c in recs), reverse=True)
    assert all(c.evidence and c.evidence[0].item_id in history for c in recs)
    with_history = ranker.recommend(RankQuery(user_id=user, k=20, exclude_history=False))
    assert history & {c.item_id for c in with_history}


def test_text_only_and_inline_history_queries(ranker, ranker_catalog):
    recs = ranker.recommend(RankQuery(text="digital caliper for measuring", k=5))
    assert len(recs) == 5 and all(c.query_match is not None and not c.evidence for c in recs)
    assert any("aliper" in ranker_catalog.get_item(c.item_id).title for c in recs)
    inline = ranker.recommend(RankQuery(user_id="nobody-yet", history=(SANDING_80,), k=3))
    assert SANDING_120 in [c.item_id for c in inline] and SANDING_80 not in [c.item_id for c in inline]
    both = ranker.recommend(RankQuery(history=(SANDING_80,), text="glue", k=3))
    assert all(c.query_match is not None and c.evidence for c in both)


def test_filters_category_and_exclude(ranker, ranker_catalog):
    recs = ranker.recommend(RankQuery(history=(SANDING_80,), k=10, category="sanding",
                                                exclude=(SANDING_120,)))
    assert recs and SANDING_120 not in {c.item_id for c in recs}
    assert all("sanding" in ranker_catalog.get_item(c.item_id).category.lower() for c in recs)


@pytest.mark.parametrize("query, field", [
    (RankQuery(user_id="x", k=0), "k"),
    (RankQuery(user_id="x", k=101), "k"),                 # the server's limit, not a looser one of its own
    (RankQuery(), "user_id"),
    (RankQuery(user_id="u" * 200), "user_id"),
    (RankQuery(text="a" * 5000), "query"),                # the proto's field names, as over gRPC
    (RankQuery(history=("",)), "history[0]"),
    (RankQuery(history=("A",), exclude=("B",) * 1001), "exclude_item_ids"),
    (RankQuery(history=("A",), category="c" * 300), "category"),
])
def test_validation_names_the_field(ranker, query, field):
    """One validation (core.validation) for the ranker and the server: same limits, proto field names."""
    with pytest.raises(InvalidInput) as err:
        ranker.recommend(query)
    assert err.value.field == field and field in str(err.value)


def test_unknown_user_and_items_name_the_field(ranker):
    with pytest.raises(UnknownUser) as err:
        ranker.recommend(RankQuery(user_id="no-such-user"))
    assert err.value.field == "user_id"
    with pytest.raises(UnknownItem) as err:
        ranker.recommend(RankQuery(history=("NOPE",)))
    assert err.value.field == "history"
    with pytest.raises(UnknownItem) as err:
        ranker.score_items(RankQuery(history=(SANDING_80,)), ["NOPE"])
    assert err.value.field == "item_ids"


def test_cold_start_item_searchable_at_once_then_removed(catalog, ranker_encoder):
    ranker = Ranker.zero_shot(catalog, device="cpu", encoder=ranker_encoder)
    new = Item(id="NEW-FLUX-1", title="Flux capacitor calibration kit for time machines",
               category="Industrial & Scientific Time Travel Supplies", brand="Doc Brown Labs")
    catalog.upsert_items([new])      # the catalog is the caller's; the ranker owns only its index
    ranker.add_items([new])
    top = ranker.recommend(RankQuery(text="flux capacitor for a time machine", k=3))
    assert top[0].item_id == new.id
    assert catalog.get_item(new.id).brand == "Doc Brown Labs"
    # a user who buys it now gets it as evidence at once (history is read per call)
    catalog.add_events([Event(user_id="u-new", item_id=new.id, ts=1.0)])
    [c] = ranker.score_items(RankQuery(user_id="u-new"), [SANDING_80])
    assert c.evidence[0].item_id == new.id
    ranker.remove_items([new.id])
    assert catalog.get_item(new.id).id == new.id, "the ranker does not write the catalog"
    assert new.id not in {c.item_id for c in ranker.recommend(RankQuery(text="flux capacitor time machine", k=10))}
    with pytest.raises(UnknownItem):
        ranker.remove_items([new.id])


def test_index_kind_chosen_by_size_and_ivf_supports_removal():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(20, 32))
    x = centers[rng.integers(0, 20, 3000)] + 0.3 * rng.normal(size=(3000, 32))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    ids = np.arange(3000, dtype=np.int64)
    assert VectorIndex.build(x, ids, IndexConfig(exact_max_items=5000)).kind == "flat"
    ivf = VectorIndex.build(x, ids, IndexConfig(exact_max_items=1000))
    assert ivf.kind == "ivf" and ivf.describe()["nlist"] > 1
    exact = VectorIndex.build(x, ids, IndexConfig(exact_max_items=5000))
    _, got = ivf.search(x[:20], 10)
    _, want = exact.search(x[:20], 10)
    recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want)])
    assert recall >= 0.9
    ivf.remove([int(want[0][0])])
    _, after = ivf.search(x[:1], 10)
    assert int(want[0][0]) not in after[0]
    _, excl = exact.search(x[:1], 5, exclude=[int(want[0][0])])
    assert int(want[0][0]) not in excl[0]


def test_ranker_uses_approximate_index_above_threshold(small_db, ranker_encoder, tmp_path):
    import shutil

    from store.catalog import Catalog
    path = tmp_path / "c.sqlite"
    shutil.copy(small_db, path)
    cat = Catalog(path)
    try:
        ranker = Ranker.zero_shot(cat, device="cpu", encoder=ranker_encoder,
                                  config=RankerConfig(index=IndexConfig(exact_max_items=1000)))
        assert ranker.describe()["index"]["kind"] == "ivf"
        recs = ranker.recommend(RankQuery(history=(SANDING_80,), k=5))
        assert SANDING_120 in [c.item_id for c in recs]
    finally:
        cat.close()
