"""ExplainerConfig: one typed configuration for the explainer, validated on construction.

The same mechanism as the server's (`core.settings`): each field is an environment variable
`EXPLAINREC_LLM_<FIELD>`, a key of a TOML file (flat or an `[llm]` table) and, where a command
exposes it, a flag. Bad values are errors naming the field, never silent defaults.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from core.settings import Settings, setting


@dataclass
class ExplainerConfig(Settings):
    ENV_PREFIX: ClassVar[str] = "EXPLAINREC_LLM_"
    TOML_TABLE: ClassVar[str] = "llm"

    vllm_url: str = setting("", 'Base URL of a running OpenAI-compatible vLLM server (e.g. http://gpu- '
                                'box:8000), or several separated by commas: requests are spread over those that '
                                'are up (`explainer/vllm_pool.py`). Empty: local mode, the caller starts a '
                                'LocalVLLMServer and sets this to its URL.')

    model: str = setting("", "Served model name sent in each request. Empty: asked from the server's /v1/models "
                             'once.')

    enabled: bool = setting(True, 'False: never call the LLM; every justification is the deterministic '
                                  'template.')

    prompt_template: str = setting("link", 'Name of the Jinja prompt under explainer/templates/ (without the '
                                           '.j2); its version is in the file.')

    n_samples: int = setting(4, 'Samples per item in one call (`n`). Passing samples are ranked (citing an '
                                'attribute too, then the most grounded, then the shortest); the best is returned.')

    temperature: float = setting(0.7, 'Sampling temperature for the samples (the first sample is not special: '
                                      'all use this).')

    top_p: float = setting(0.9, 'Nucleus sampling cut-off.')

    max_tokens: int = setting(40, 'Output budget per sample. A text cut by this limit fails the verifier '
                                  '(truncated).')

    request_timeout_s: float = setting(20.0, 'Timeout of one LLM call (seconds) when the request has no deadline '
                                             '(the evaluation; the batch job sets its own). With a deadline (every '
                                             'served call: the caller\'s, else the server\'s explain_deadline_s) each '
                                             'LLM call may use what is left of it. A call past it falls back to the '
                                             'template.')

    deadline_s: float | None = setting(None, 'Default whole-request deadline (seconds) when explain() is called '
                                             'without one. None: only the per-call timeout.')

    concurrency: int = setting(32, 'Most LLM calls in flight at once from this process (vLLM batches them).')

    preferred_attributes: tuple[str, ...] = setting(help="Item attribute names this catalog's reasons should "
                                                         'use first (e.g. "genres,year"; comma-separated in '
                                                         'EXPLAINREC_LLM_PREFERRED_ATTRIBUTES). Others are '
                                                         'ranked from the catalog: ids and near-constant '
                                                         'attributes last.', default_factory=tuple)

    # --- local mode: how LocalVLLMServer starts the engine -----------------------
    model_dir: Path | None = setting(None, "HF model directory to serve (prepare_model's output). None: "
                                           'prepared under workdir.')

    workdir: Path | None = setting(None, 'Working directory for the model, the vLLM cache and the server log. '
                                         'None: store.paths.default_workdir().')

    host: str = setting("127.0.0.1", 'Interface the local server binds.')

    port: int = setting(0, 'Port of the local server; 0 picks a free one.')

    enforce_eager: bool = setting(True, 'Skip torch.compile/graph capture: start-up about 20-40 s instead of '
                                        '75-120 s on this CPU.')

    kv_cache_gib: int = setting(1, 'VLLM_CPU_KVCACHE_SPACE: KV cache size in GiB (the machine is shared; keep '
                                   'it small).')

    max_model_len: int = setting(2048, 'Longest prompt + output the local server accepts (tokens).')

    enable_prefix_caching: bool = setting(True, 'vLLM automatic prefix caching (the bench turns it off to '
                                                'measure its effect).')

    startup_timeout_s: float = setting(300.0, 'How long start() waits for /health before giving up (seconds).')

    extra_args: tuple[str, ...] = setting(help='More api_server flags for the local server, verbatim.', default_factory=tuple)

    def __post_init__(self) -> None:
        self.check_types()
        if self.n_samples < 1 or self.n_samples > 16:
            raise ValueError(f"n_samples must be in 1..16 (got {self.n_samples})")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be in 0..2 (got {self.temperature})")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1] (got {self.top_p})")
        if self.max_tokens < 8 or self.max_tokens > 512:
            raise ValueError(f"max_tokens must be in 8..512 (got {self.max_tokens})")
        if self.request_timeout_s <= 0:
            raise ValueError(f"request_timeout_s must be > 0 (got {self.request_timeout_s})")
        if self.deadline_s is not None and self.deadline_s <= 0:
            raise ValueError(f"deadline_s must be > 0 or None (got {self.deadline_s})")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1 (got {self.concurrency})")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535 (got {self.port})")
        if self.kv_cache_gib < 1:
            raise ValueError(f"kv_cache_gib must be >= 1 (got {self.kv_cache_gib})")
        if self.startup_timeout_s <= 0:
            raise ValueError(f"startup_timeout_s must be > 0 (got {self.startup_timeout_s})")
        if isinstance(self.preferred_attributes, str):
            self.preferred_attributes = tuple(a.strip() for a in self.preferred_attributes.split(",") if a.strip())
        self.preferred_attributes = tuple(self.preferred_attributes)
        if any(not isinstance(a, str) or not a.strip() for a in self.preferred_attributes):
            raise ValueError(f"preferred_attributes must be attribute names (got {self.preferred_attributes!r})")
        urls = [u.strip().rstrip("/") for u in self.vllm_url.split(",") if u.strip()]
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"vllm_url must start with http:// or https:// (got {url!r})")
        self.vllm_url = ",".join(urls)   # several, comma-separated: requests are spread over them
        if self.model_dir is not None:
            self.model_dir = Path(self.model_dir)
        if self.workdir is not None:
            self.workdir = Path(self.workdir)

    @classmethod
    def from_env(cls, **overrides: Any) -> "ExplainerConfig":
        """Fields from EXPLAINREC_LLM_<FIELD> environment variables, then `overrides` (None ignored).
        A value that does not parse (EXPLAINREC_LLM_ENABLED=maybe) is an error naming the variable."""
        return cls.load(None, None, **overrides)
