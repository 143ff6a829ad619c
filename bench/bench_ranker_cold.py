"""How the trained ranker treats cold items, and what an item-side zero-shot boost would buy.

    python bench/bench_ranker_cold.py [--zero-residuals] [--boosts 1,2,4,8]

Loads <workdir>/ranker, scales the zero-shot MiniLM slice of the served vectors of items that
never occur in the train split by each boost c, and prints valid/test NDCG@10 over all users
and NDCG@10 / Recall@50 over the users whose target is such an item. `--zero-residuals` first
sets those items' learned residuals to zero, which is how an item added after training looks
(a full-catalog softmax pushes the residuals of never-seen items down during training).
Exploratory: the served model does not apply a boost yet.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--zero-residuals", action="store_true")
    ap.add_argument("--boosts", default="1,2,4,6,8")
    args = ap.parse_args()

    import torch

    from ranker.data import load_split_data
    from ranker.encoder import TextEncoder
    from ranker.evaluate import _split, cold_target_mask, evaluate_ranks, ranks_for_scores
    from ranker.scorers import load_scorer
    from store.catalog import Catalog
    from store.paths import db_path, default_workdir, model_dir

    workdir = args.workdir or default_workdir()
    catalog = Catalog(db_path(workdir))
    scorer = load_scorer(model_dir(workdir), "cpu")
    data = load_split_data(catalog, TextEncoder("cpu"))
    cold = np.array([r not in data.train_items for r in range(len(data.item_ids))])
    if args.zero_residuals:
        for member in getattr(scorer, "members", [scorer]):
            if hasattr(member, "model"):
                rows = [member.item_rows[data.item_ids[r]] for r in np.where(cold)[0]]
                with torch.no_grad():
                    for tower in (member.model.item, member.model.item_in):
                        if tower is not None and getattr(tower, "residual", None) is not None:
                            tower.residual.weight[rows] = 0
    item_vecs = scorer.item_vectors(data.item_ids, data.text_emb)
    in_vecs = scorer.history_vectors(data.item_ids, data.text_emb)
    in_vecs = item_vecs if in_vecs is None else in_vecs
    zs = 384  # the zero-shot MiniLM slice is the last one of a blended scorer
    print(f"cold items (never in train): {int(cold.sum())} of {len(cold)}; served dim {item_vecs.shape[1]}")
    for split in ("valid", "test"):
        hist, targets = _split(data, split)
        users = scorer.user_vectors([in_vecs[h] for h in hist])
        mask = cold_target_mask(data, split)
        for c in (float(x) for x in args.boosts.split(",")):
            v = item_vecs.copy()
            v[cold, -zs:] *= c
            ranks = ranks_for_scores(lambda a, b: users[a:b] @ v.T, hist, targets, False)
            every, coldm = evaluate_ranks(ranks).metrics, evaluate_ranks(ranks, mask).metrics
            print(f"{split} boost {c:g}: all ndcg@10 {every['ndcg@10']:.4f} | cold-target users {int(mask.sum())}: "
                  f"ndcg@10 {coldm['ndcg@10']:.4f} recall@50 {coldm['recall@50']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
