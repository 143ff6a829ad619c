"""`retrain` end to end on a GPU box that has torch but not MiniLM's weights (they stay behind: every
item text's vector travels in the text cache instead).

    RETRAIN_HOME=W DEVICE=cuda python bench/retrain_on_device.py BUDGET_S

W holds catalog.sqlite, cache/text_embeddings.sqlite and models/ (config.json, model*.pt,
item_ids.json and item_bias.json of the serving version, `current` pointing at it; its vectors and
index are not needed). Prints retrain's summary with the wall time and the peak CUDA memory, and
writes it to $OUT/retrain_on_device.json.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class CachedTexts:
    """MiniLM's vectors of the item texts, read from the text cache alone (a missing text is a KeyError)."""

    def __init__(self, path: Path, device: str):
        from ranker.encoder import EmbeddingCache

        self.key = EmbeddingCache.key
        self.cache, self.device = EmbeddingCache(path), device

    def encode(self, texts, use_cache: bool = True) -> np.ndarray:
        found = self.cache.get_many(list(texts))
        return np.stack([found[self.key(t)] for t in texts]).astype(np.float32)


def main() -> int:
    home = Path(os.environ.get("RETRAIN_HOME", ".sweep/home")).resolve()
    device = os.environ.get("DEVICE", "cuda")
    os.environ["EXPLAINREC_HOME"] = str(home)
    import torch

    from ranker.retrain import retrain
    from store.catalog import Catalog
    from store.paths import db_path

    print(torch.__version__, torch.cuda.get_device_name(0) if device == "cuda" else "cpu", flush=True)
    t = time.time()
    summary = retrain(Catalog(db_path(home)), home, time_budget_s=float(sys.argv[1]), progress=False,
                      encoder=CachedTexts(home / "cache" / "text_embeddings.sqlite", device), device=device)
    summary["wall_s"] = round(time.time() - t, 1)
    summary["cuda_max_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20) if device == "cuda" else 0
    print(json.dumps(summary, indent=1), flush=True)
    (Path(os.environ.get("OUT", "/tmp")) / "retrain_on_device.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
