"""Hot swap of the ranker: a promoted model version starts serving without a restart.

How a new version reaches a running server: `explainrec retrain` (or `explainrec models promote`)
switches the `<workdir>/models/current` symlink; the server polls it every `model_watch_s`
seconds (and at once on SIGHUP). A new target is loaded *beside* the serving ranker, checked
with one probe query, swapped in by one attribute assignment, then brought in step with catalog
changes made while it loaded (`Ranker.sync_items`). A call already running holds its own reference to the old ranker
and finishes on it; calls that start after the swap use the new one. Every reply names the
version that ranked it (`model_version`).

A version that fails to load or to answer the probe (missing or corrupt file, wrong shapes) is
refused: the old ranker keeps serving, one ERROR log line says why, the counter
`explainrec_model_swaps_total{result="refused"}` goes up, and that target is not retried until
the pointer changes again.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable

from ranker.types import RankQuery
from ranker.versions import read_pointer, versions_root

log = logging.getLogger("explainrec.model_swap")


class ModelWatcher:
    """Polls the `current` pointer and swaps the ranker of `target` (an object with a `.ranker`).

    load(path) -> a Ranker for that version directory (Ranker.load with the serving settings).
    """

    def __init__(self, workdir: Path, target, load: Callable, poll_s: float = 2.0,
                 on_result: Callable[[str, str], None] | None = None):
        self.workdir = Path(workdir)
        self.target = target
        self.load = load
        self.poll_s = poll_s
        self.on_result = on_result or (lambda result, version: None)
        self.refused: str | None = None        # the last target that failed: not retried until the pointer moves
        self._lock = threading.Lock()          # one swap at a time (poll thread, SIGHUP, tests)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        """Swaps if the pointer names a version other than the serving one. Returns True if it swapped."""
        with self._lock:
            wanted = read_pointer(self.workdir)
            serving = getattr(self.target.ranker, "version", None)
            if wanted is None or wanted == serving or wanted == self.refused:
                return False
            return self._swap(wanted)

    def _swap(self, version: str) -> bool:
        path = versions_root(self.workdir) / version
        t0 = time.perf_counter()
        try:
            new = self.load(path)
            new.version = version
            new.recommend(RankQuery(text="probe", k=1))     # a loaded model that cannot answer is refused too
        except Exception as exc:  # noqa: BLE001 - any failure keeps the old model serving
            self.refused = version
            log.error("model version %s refused (%s: %s); still serving %s", version, type(exc).__name__, exc,
                      getattr(self.target.ranker, "version", "?"))
            self.on_result("refused", version)
            return False
        old = self.target.ranker
        self.target.ranker = new                               # atomic: new calls see the new model
        # Catalog changes that reached the old ranker while the new one loaded (Ranker.load read the
        # catalog at its start): every item is compared, new/changed ones indexed, deleted ones removed.
        indexed, removed = new.sync_items()
        self.refused = None
        log.info("model version %s serving (was %s; loaded in %.1f s; %d items indexed, %d removed after the swap)",
                 version, getattr(old, "version", "?"), time.perf_counter() - t0, indexed, removed)
        self.on_result("ok", version)
        return True

    def start(self) -> None:
        if self.poll_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="explainrec-model-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the watcher must outlive a bad poll
                log.exception("model watch: poll failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
