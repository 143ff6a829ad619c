"""Where ExplainRec keeps its files by default. Everything is overridable by flag or env var."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def default_workdir() -> Path:
    """One working directory for the database, models and indexes.

    `$EXPLAINREC_HOME` wins; otherwise `.explainrec/` in the project checkout, so a
    fresh clone keeps everything it builds beside itself (and git ignores it).
    """
    env = os.environ.get("EXPLAINREC_HOME")
    return Path(env).expanduser().resolve() if env else PROJECT_ROOT / ".explainrec"


def default_data_dir() -> Path:
    """The embedded default data set: Amazon 2018 Industrial & Scientific (UniSRec)."""
    env = os.environ.get("EXPLAINREC_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return (PROJECT_ROOT.parent / "shared" / "data" / "amazon-scientific").resolve()


def db_path(workdir: Path) -> Path:
    return Path(workdir) / "catalog.sqlite"


def store_location(workdir: Path, store: str | None = None) -> str:
    """Where the catalog lives: `store` if given, else `$EXPLAINREC_STORE`, else the SQLite file
    in the workdir. A `postgresql://user@host:port/db` URL selects the PostgreSQL backend, which
    several service replicas can share; anything else is a SQLite file path."""
    chosen = store or os.environ.get("EXPLAINREC_STORE", "")
    return chosen if chosen else str(db_path(workdir))


def store_missing(location: str) -> bool:
    """True when a SQLite store file does not exist yet (a PostgreSQL URL is never "missing":
    whether it answers is found out by connecting)."""
    return not location.startswith(("postgresql://", "postgres://")) and not Path(location).exists()


def model_dir(workdir: Path) -> Path:
    """The trained ranker (towers + index) lives here."""
    return Path(workdir) / "ranker"


def llm_dir(workdir: Path) -> Path:
    """The HF model directory made from the shipped GGUF."""
    return Path(workdir) / "llm" / "smollm2-135m-instruct"
