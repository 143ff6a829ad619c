"""Justification feedback: helpful / not-helpful ratings decide which link kind the explainer prefers.

A justification states one link between the recommended item and a history item (same brand,
same category, bought together, ...; see explainer.links). Each rating of a justification is one
Bernoulli trial for the link kinds it stated. Per kind the posterior is Beta(a + helpful,
b + not helpful); its mean is how often shoppers found that kind of reason helpful.

The hook is one function, `LinkPreferences.bonus(kinds)`: the anchor choice adds it to a link's
strength, so a kind rated helpful more often wins ties and near-ties against one rated less often,
while a much stronger link (a variant, many co-buyers) still wins. With no ratings every kind sits
at the prior mean and the bonus is 0: the choice is exactly the unrated one.

Ratings come from the feedback table (`SubmitFeedback` with `helpful` set). The feedback row names
(user, item), not the link; `count` takes the kinds each rated justification stated, which the
caller recomputes with the same anchor choice the explainer used (`link_kinds_for(user, item)`).

Each stored rating counts once in each serving process, whichever process stored it: the tally
remembers the feedback ids it counted, so a retried call (same id), the store's notice of a rating
another process stored (`server.replicas.follow_feedback`) and a re-read of the recent ratings after
a lost notice can all offer the same row.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from core.errors import DomainError
from ranker.types import RankQuery


@dataclass
class BetaScore:
    helpful: int = 0
    not_helpful: int = 0

    def mean(self, a: float, b: float) -> float:
        return (a + self.helpful) / (a + b + self.helpful + self.not_helpful)


@dataclass
class LinkPreferences:
    """Beta-Bernoulli score per link kind. Thread-safe (ratings arrive while justifications are made)."""

    prior_a: float = 2.0
    """Prior pseudo-count of helpful ratings per kind (Beta a)."""
    prior_b: float = 2.0
    """Prior pseudo-count of not-helpful ratings per kind (Beta b)."""
    weight: float = 40.0
    """Strength points per unit of (posterior mean - prior mean). Two kinds rated .8 and .3 end 20
    points apart: enough to prefer a deep shared category (8 + 4 per level) or a brand (15) over
    "other shoppers bought both" (30-40), never enough to pass over a variant (100)."""
    scores: dict[str, BetaScore] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    max_remembered: int = 100_000
    """Feedback ids remembered one by one (then the older half folds into `_floor`): the store's ids
    grow, and a rating is only offered again while it is recent (a retry, another process's notice, a
    re-read of the latest MAX_RATINGS_READ), so a long-running process need not keep every id."""
    _counted: set[int] = field(default_factory=set, repr=False, compare=False)   # feedback ids counted
    _floor: int = field(default=-1, repr=False, compare=False)    # ids at or below it count as counted

    def count(self, feedback_id: int, helpful: bool, kinds: Callable[[], Sequence[str]]) -> bool:
        """The stored rating `feedback_id` of a justification, counted once however often it is offered;
        kinds() (asked only the first time) gives the link kinds it stated. True if it counted now."""
        with self._lock:
            if feedback_id <= self._floor or feedback_id in self._counted:
                return False
            self._counted.add(feedback_id)
            if len(self._counted) > self.max_remembered:
                ids = sorted(self._counted)
                cut = len(ids) - self.max_remembered // 2
                self._floor, self._counted = ids[cut - 1], set(ids[cut:])
        stated = kinds()            # outside the lock: it ranks (link_kinds_for)
        if stated:
            self.record(stated, helpful)
        return bool(stated)

    def count_rows(self, rows: Iterable[dict], kinds_for: Callable[[str, str], Sequence[str]]) -> int:
        """Feedback rows (id, user_id, item_id, helpful); rows without a rating are skipped. Returns
        how many counted now."""
        return sum(self.count(int(r["id"]), bool(r["helpful"]), lambda r=r: kinds_for(r["user_id"], r["item_id"]))
                   for r in rows if r.get("helpful") is not None)

    def record(self, kinds: Sequence[str], helpful: bool) -> None:
        """One rating of a justification that stated these link kinds."""
        with self._lock:
            for k in set(kinds):
                s = self.scores.setdefault(k, BetaScore())
                if helpful:
                    s.helpful += 1
                else:
                    s.not_helpful += 1

    def mean(self, kind: str) -> float:
        with self._lock:
            return self.scores.get(kind, BetaScore()).mean(self.prior_a, self.prior_b)

    def bonus(self, kinds: Sequence[str]) -> float:
        """Added to a link's strength: the best-rated of its kinds, relative to the prior mean."""
        if not kinds:
            return 0.0
        prior = self.prior_a / (self.prior_a + self.prior_b)
        return self.weight * (max(self.mean(k) for k in kinds) - prior)

    def summary(self) -> dict[str, dict]:
        with self._lock:
            return {k: {"helpful": s.helpful, "not_helpful": s.not_helpful,
                        "mean": round(s.mean(self.prior_a, self.prior_b), 4)} for k, s in sorted(self.scores.items())}

    @classmethod
    def from_ratings(cls, ratings: Iterable[dict], kinds_for: Callable[[str, str], Sequence[str]],
                     **kwargs) -> "LinkPreferences":
        """ratings: feedback rows (id, user_id, item_id, helpful in {0, 1, None}); kinds_for(user, item):
        the link kinds the justification of that pair stated. Rows without a rating are skipped."""
        prefs = cls(**kwargs)
        prefs.count_rows(ratings, kinds_for)
        return prefs


def link_kinds_for(pipeline, user_id: str, item_id: str) -> tuple[str, ...]:
    """The link kind the justification of (user, item) leads with (the strongest, stated first),
    recomputed through the pipeline's ranking + facts (steps 1-4; no LLM). The rating is credited to
    that kind only: crediting every kind a link has would give each kind the same mean. () when the
    pair cannot be justified any more (unknown user, deleted item) or states no link."""
    try:
        prepared = pipeline.prepare(RankQuery(user_id=user_id, k=1), item_ids=[item_id])
    except (DomainError, ValueError):
        return ()
    return tuple(prepared.facts[0].links[:1]) if prepared.facts else ()


MAX_RATINGS_READ = 2000     # ratings read from the store at a start or after a lost notice: the latest ones


def preferences_from_catalog(catalog, pipeline, max_ratings: int = MAX_RATINGS_READ, **kwargs) -> LinkPreferences:
    """Preferences from the most recent rated feedback rows in the store (a server start)."""
    return LinkPreferences.from_ratings(catalog.rated_feedback(latest=max_ratings),
                                        lambda u, i: link_kinds_for(pipeline, u, i), **kwargs)
