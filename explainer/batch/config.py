"""BatchConfig: the settings of `explainrec explain-batch`, by the one config mechanism (`core.settings`).

Each field is a flag (`--users-topk`, `--no-llm`, ...), an environment variable
`EXPLAINREC_BATCH_<FIELD>` and a key of a TOML file's `[batch]` table. The input and output paths
are the command's arguments, not settings.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from core.settings import Settings, setting


class Engine(str, enum.Enum):
    LOCAL = "local"   # one process: asyncio over the groups
    RAY = "ray"       # Ray Data actors, the driver as the one writer

    def __str__(self) -> str:
        return self.value


@dataclass
class BatchConfig(Settings):
    ENV_PREFIX: ClassVar[str] = "EXPLAINREC_BATCH_"
    TOML_TABLE: ClassVar[str] = "batch"

    users_topk: int = setting(0, "input is user ids; justify the ranker's top K items of each (keys user#rank); "
                                 "0: the input is (user, item) pairs")
    engine: Engine = setting(Engine.LOCAL, "local: one process; ray: Ray Data actors")
    ray_address: str = setting("", "Ray cluster address (empty: start a small local Ray)")
    ray_workers: int = setting(1, "Ray actors (each builds a ranker + explainer)")
    vllm_url: tuple[str, ...] = setting(help="OpenAI-compatible vLLM endpoints, comma-separated (Ray actors spread "
                                             "over them). Empty: start a local vLLM server for the job",
                                        default_factory=tuple)
    model: str = setting("", "served model name (empty: asked from the server)")
    llm: bool = setting(True, "justify with the LLM; --no-llm: deterministic templates only, no vLLM")
    ranker_dir: Path | None = setting(None, "trained ranker directory (default: <workdir>/ranker if trained, "
                                            "else zero-shot)")
    zero_shot: bool = setting(False, "use the untuned MiniLM ranker")
    concurrency: int = setting(32, "items in flight to vLLM (per process / actor)")
    max_group: int = setting(16, "most items of one user per pipeline call (they share the prompt prefix)")
    chunk_size: int = setting(64, "output lines per fsync'ed chunk")
    n_samples: int | None = setting(None, "LLM samples per item (empty: the explainer's default)")
    deadline_s: float | None = setting(None, "per-group LLM deadline, seconds (empty: none)")
    request_timeout_s: float = setting(300.0, "per-request HTTP timeout. Batch jobs queue many requests on purpose, "
                                              "so this is much longer than the service's: a timeout here means a "
                                              "template, not a retry")
    progress: bool = setting(True, "show a progress bar")

    def __post_init__(self) -> None:
        self.check_types()
        if not 1 <= self.max_group <= 256:
            raise ValueError(f"max_group must be in 1..256 (got {self.max_group})")
        for name, low in (("concurrency", 1), ("chunk_size", 1), ("ray_workers", 1), ("users_topk", 0)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low} (got {getattr(self, name)})")
        if self.n_samples is not None and self.n_samples < 1:
            raise ValueError(f"n_samples must be >= 1 (got {self.n_samples})")
        if self.deadline_s is not None and self.deadline_s <= 0:
            raise ValueError(f"deadline_s must be > 0 (got {self.deadline_s})")
        if self.request_timeout_s <= 0:
            raise ValueError(f"request_timeout_s must be > 0 (got {self.request_timeout_s})")
