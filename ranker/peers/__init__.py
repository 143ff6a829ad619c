"""Sequential peers that eval-ranker trains and evaluates beside the model, on the same split and protocol.

Each peer is trained from ranker.data.SplitData alone (item rows, not text) and evaluated through
ranker.evaluate with the model's metrics. `run_peer(name, data, ...)` returns its ranks per view.
"""
from __future__ import annotations

KNOWN_PEERS = ("sasrec",)


def parse_peers(raw: str, flag: str = "--peers") -> tuple[str, ...]:
    """"sasrec" or "a,b" -> the names, in order, without repeats; ValueError naming the flag and the known peers."""
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    if not names:
        raise ValueError(f"{flag} needs at least one peer name (known: {', '.join(KNOWN_PEERS)})")
    unknown = [n for n in names if n not in KNOWN_PEERS]
    if unknown:
        raise ValueError(f"{flag}: unknown peer {unknown[0]!r} (known: {', '.join(KNOWN_PEERS)})")
    return tuple(dict.fromkeys(names))
