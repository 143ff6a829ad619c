"""Model versions: immutable directories under <workdir>/models/ and the `current` pointer.

    <workdir>/ranker/              the model `explainrec train` writes (version "ranker", the base)
    <workdir>/models/v001-<utc>/   one directory per `explainrec retrain`, never changed once written
    <workdir>/models/current       a symlink to the serving version's directory name

The serving model is the one `current` points at, else the base. Promotion writes a new symlink
beside the old one and renames it over `current` (os.replace): a reader sees the old or the new
target, never a missing or half-written pointer. A version's files are made read-only when it is
sealed; its metrics (and the comparison with the model it was measured against) are in
config.json and metrics.json.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from store.paths import model_dir

VERSIONS_DIR = "models"
POINTER = "current"
BASE_NAME = "ranker"
_VERSION_RE = re.compile(r"^v(\d+)-")


def versions_root(workdir: Path) -> Path:
    return Path(workdir) / VERSIONS_DIR


def pointer_path(workdir: Path) -> Path:
    return versions_root(workdir) / POINTER


def version_name(path: Path) -> str:
    """The name a model directory is listed and served under (its directory name)."""
    return Path(path).name


def current_version_dir(workdir: Path) -> Path | None:
    """The serving model's directory: `current`'s target, else the base if trained, else None."""
    pointer = pointer_path(workdir)
    if pointer.is_symlink():
        return versions_root(workdir) / os.readlink(pointer)
    base = model_dir(workdir)
    return base if (base / "config.json").exists() else None


def read_pointer(workdir: Path) -> str | None:
    """The raw pointer target (a version name), None when no version was ever promoted."""
    try:
        return os.readlink(pointer_path(workdir))
    except OSError:
        return None


def new_version_dir(workdir: Path) -> Path:
    """A fresh, not yet existing directory for the next version: v<n+1>-<UTC time>."""
    root = versions_root(workdir)
    root.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in root.iterdir() if (m := _VERSION_RE.match(p.name))]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return root / f"v{max(numbers, default=0) + 1:03d}-{stamp}"


def seal(path: Path) -> None:
    """Makes a version's files read-only: a version is never edited after it is written."""
    for p in Path(path).iterdir():
        if p.is_file():
            p.chmod(0o444)


def promote(workdir: Path, version_dir: Path) -> None:
    """Points `current` at version_dir, atomically. version_dir must be a complete version under models/."""
    version_dir = Path(version_dir)
    root = versions_root(workdir)
    if version_dir.parent.resolve() != root.resolve():
        raise ValueError(f"{version_dir} is not a version directory under {root}")
    if not (version_dir / "config.json").exists():
        raise FileNotFoundError(f"{version_dir} holds no model (config.json missing)")
    tmp = root / f".{POINTER}.{os.getpid()}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(version_dir.name, tmp)     # relative: the workdir can move
    os.replace(tmp, pointer_path(workdir))


def list_versions(workdir: Path) -> list[dict]:
    """Every model version, oldest first, with its metrics and whether it serves now."""
    current = current_version_dir(workdir)
    current_name = version_name(current) if current else None
    dirs = []
    base = model_dir(workdir)
    if (base / "config.json").exists():
        dirs.append(base)
    root = versions_root(workdir)
    if root.exists():
        dirs += sorted((p for p in root.iterdir() if _VERSION_RE.match(p.name) and p.is_dir()),
                       key=lambda p: int(_VERSION_RE.match(p.name).group(1)))
    out = []
    for d in dirs:
        row: dict = {"version": d.name, "path": str(d), "serving": d.name == current_name}
        try:
            config = json.loads((d / "config.json").read_text())
        except (OSError, ValueError) as exc:
            row["error"] = f"unreadable config.json: {exc}"
            out.append(row)
            continue
        row["trained_at"] = config.get("trained_at")
        row["parent"] = config.get("parent")
        row["valid"] = config.get("valid")
        metrics = d / "metrics.json"
        if metrics.exists():
            m = json.loads(metrics.read_text())
            row.update({"promoted": m.get("promoted"), "decision": m.get("decision"), "metrics": m.get("new"),
                        "parent_metrics": m.get("current"), "data": m.get("data"), "retrain_s": m.get("retrain_s")})
        out.append(row)
    return out
