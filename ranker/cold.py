"""How much more the text counts for cold items: the blend's cold boost, picked on valid.

A blended model scores model + w * zero-shot. Items without a residual (no train events, or
upserted after training) are ranked by the text path alone, which the towers learn less well
than the residuals of warm items, so a fully trained model pushes them under warm items it has
seen. `ColdBoostedZeroShot` multiplies their zero-shot part by a boost; `choose_cold_boost` picks
the boost on the valid split: the one that ranks the cold valid targets best among those that
keep the overall valid NDCG@10 within `tolerance` of the unboosted blend (no warm loss).
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def choose_cold_boost(model, blend_weight: float, data, boosts: list[float], tolerance: float = 0.002,
                      skip=()):
    """model: the tower scorer (or ensemble) before blending; skip: item ids never boosted (a retrain's
    new items, see ColdBoostedZeroShot). Returns (blended scorer, boost, results) where results maps
    each boost to its valid {"ndcg@10", "cold_ndcg@10"}."""
    from ranker.evaluate import cold_target_mask, evaluate_ranks, scorer_ranks
    from ranker.scorers import BlendScorer

    if blend_weight <= 0 or len(boosts) <= 1:
        boost = boosts[0] if boosts and blend_weight > 0 else 1.0
        return (BlendScorer(model, blend_weight, cold_boost=boost, cold_skip=skip) if blend_weight > 0 else model), \
            boost, {}
    cold = cold_target_mask(data, "valid")
    results, scorers = {}, {}
    for boost in sorted(set([1.0, *boosts])):
        scorers[boost] = BlendScorer(model, blend_weight, cold_boost=boost, cold_skip=skip)
        ranks = scorer_ranks(scorers[boost], data, "valid")
        results[boost] = {"ndcg@10": round(evaluate_ranks(ranks).score, 5),
                          "cold_ndcg@10": round(evaluate_ranks(ranks, cold).score, 5) if cold.any() else 0.0}
    floor = results[1.0]["ndcg@10"] - tolerance
    allowed = [b for b in results if results[b]["ndcg@10"] >= floor]
    boost = max(allowed, key=lambda b: (results[b]["cold_ndcg@10"], results[b]["ndcg@10"], -b))
    log.info("cold boost: valid by boost %s (%d cold valid users) -> %s", results, int(cold.sum()), boost)
    return scorers[boost], boost, results
