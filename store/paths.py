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


def model_dir(workdir: Path) -> Path:
    """The trained ranker (towers + index) lives here."""
    return Path(workdir) / "ranker"


def llm_dir(workdir: Path) -> Path:
    """The HF model directory made from the shipped GGUF."""
    return Path(workdir) / "llm" / "smollm2-135m-instruct"
