"""The fast tier's fake encoder (tests/fake_model.py) behaves like the encoder it stands in for:
unit float32[n, 384], the same vector for the same text in any process, shared words closer."""
from __future__ import annotations

import subprocess
import sys

import numpy as np

from tests.fake_model import DIM, FakeEncoder


def test_unit_vectors_deterministic_across_processes_and_closer_for_shared_words():
    enc = FakeEncoder()
    texts = ["PORTER-CABLE 80 grit sanding roll", "PORTER-CABLE 120 grit sanding roll", "Gorilla Glue, 8 oz", ""]
    v = enc.encode(texts)
    assert v.shape == (4, DIM) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)
    assert v[0] @ v[1] > 0.7 > v[0] @ v[2]
    assert enc.encode([]).shape == (0, DIM)
    # Python's hash() is salted per process: the vectors must not depend on it
    code = ("import sys; sys.path.insert(0, '.'); from tests.fake_model import FakeEncoder; "
            f"print(FakeEncoder().encode([{texts[0]!r}])[0].tobytes().hex())")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123"}).stdout.strip()
    assert other == v[0].tobytes().hex()
