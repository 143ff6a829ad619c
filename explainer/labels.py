"""Hand labels for justifications: real texts a person read as a shopper would, and the verdict
they gave. The verifier is measured by how often its pass/fail agrees with them.

One JSON object per line:
  id             a stable case id
  text           the justification as generated (prefill included)
  finish_reason  "stop" or "length"
  prefill        the frame the system wrote before the model's words ("" for a template text)
  facts          the ItemFacts the text was generated from (dataclasses.asdict)
  history_titles the shopper's history titles
  acceptable     true when a shopper would accept it as a true reason in readable names
  failure        "" when acceptable, else the kind: no_link, wrong_link, garbled_name, wrong_claim,
                 negation, praise, truncated, repetitive, unrelated, no_reason (tied to nothing the
                 shopper did: a description, or only a top-level shared category), other
  note           what the reader saw
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Sequence

from explainer.facts import ItemFacts

DEFAULT_LABELS = Path(__file__).resolve().parents[1] / "tests" / "data" / "explanations_labelled.jsonl"
FAILURE_KINDS = ("no_link", "wrong_link", "garbled_name", "wrong_claim", "negation", "praise", "truncated",
                 "repetitive", "unrelated", "no_reason", "other")


@dataclass(frozen=True)
class LabelledCase:
    id: str
    text: str
    facts: ItemFacts
    history_titles: tuple[str, ...]
    acceptable: bool
    failure: str = ""
    finish_reason: str = "stop"
    prefill: str = ""
    note: str = ""


def facts_from_dict(d: dict) -> ItemFacts:
    names = {f.name for f in fields(ItemFacts)}
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
    return ItemFacts(**kw)


def load_labels(path: Path) -> list[LabelledCase]:
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        for key in ("id", "text", "facts", "acceptable"):
            if key not in row:
                raise ValueError(f"{path}:{n}: field {key!r} is missing")
        failure = row.get("failure", "")
        if failure and failure not in FAILURE_KINDS:
            raise ValueError(f"{path}:{n}: field 'failure': {failure!r} is not one of {', '.join(FAILURE_KINDS)}")
        out.append(LabelledCase(id=row["id"], text=row["text"], facts=facts_from_dict(row["facts"]),
                                history_titles=tuple(row.get("history_titles", ())),
                                acceptable=bool(row["acceptable"]), failure=failure,
                                finish_reason=row.get("finish_reason", "stop"), prefill=row.get("prefill", ""),
                                note=row.get("note", "")))
    return out


def agreement(verifier, cases: Sequence[LabelledCase]) -> dict:
    """{"rate", "count", "accepted_but_failed": [ids], "rejected_but_passed": [ids]}."""
    accepted_failed, rejected_passed = [], []
    for c in cases:
        ok = verifier.verify(c.text, c.facts, c.history_titles, c.finish_reason, prefill=c.prefill).ok
        if c.acceptable and not ok:
            accepted_failed.append(c.id)
        elif not c.acceptable and ok:
            rejected_passed.append(c.id)
    n = len(cases)
    return {"rate": (n - len(accepted_failed) - len(rejected_passed)) / n if n else 0.0, "count": n,
            "accepted_but_failed": accepted_failed, "rejected_but_passed": rejected_passed}
