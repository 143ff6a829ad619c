"""The one typed configuration of the gRPC service.

Precedence, lowest first: the defaults below, a TOML file (`--config FILE`, a flat table or
a `[server]` table), environment variables `EXPLAINREC_SERVER_<FIELD>` (upper-case field
name), then command-line flags (`--<field-with-dashes>`). Every field's help text below is
also its flag's help, so `explainrec serve --help` is the documentation.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from core.validation import Limits

ENV_PREFIX = "EXPLAINREC_SERVER_"
LLM_MODES = ("local", "url", "off")


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class ServerConfig:
    host: str = _f("127.0.0.1", "address to bind (0.0.0.0 for all interfaces)")
    port: int = _f(50051, "gRPC port; 0 picks a free one")
    workdir: str = _f("", "working directory for the database, models and indexes "
                          "(empty: $EXPLAINREC_HOME or .explainrec/ in the checkout)")
    store: str = _f("", "the catalog: a SQLite file path, or postgresql://user@host:port/db shared by several "
                        "replicas (empty: $EXPLAINREC_STORE, else <workdir>/catalog.sqlite)")
    metrics_port: int = _f(9464, "Prometheus /metrics HTTP port; -1 disables it, 0 picks a free one")
    http_port: int = _f(-1, "support-desk web page port (it calls this service over gRPC); -1 disables it, "
                            "0 picks a free one")
    llm: str = _f("local", "justification engine: 'local' starts the shipped model under vLLM, "
                           "'url' uses --vllm-url, 'off' returns template justifications only")
    vllm_url: str = _f("", "OpenAI-compatible vLLM endpoint (with llm='url'), e.g. http://127.0.0.1:8000; "
                           "several comma-separated: requests are spread over those that answer")
    auth_token: str = _f("", "one token with every scope: when set, every call except health needs "
                             "'authorization: Bearer <token>' (prefer scoped tokens: auth_tokens_file)")
    auth_tokens_file: str = _f("", "file of scoped tokens, one 'name scopes sha256:<hex>' per line "
                                   "(scopes: read, write, admin; see server/README.md)")
    auth_tokens: str = _f("", "scoped tokens inline, ';'-separated 'name scopes secret' entries "
                              "(usually from the environment)")
    tls_cert: str = _f("", "PEM certificate chain; with tls_key the server speaks TLS only")
    tls_key: str = _f("", "PEM private key for tls_cert")
    tls_client_ca: str = _f("", "PEM CA bundle: with it, clients must present a certificate it signed (mutual TLS)")
    log_user_ids: str = _f("hash", "user ids in access log lines: 'hash' (keyed SHA-256, 12 hex digits), "
                                   "'plain' or 'off'")
    log_hash_key: str = _f("", "key of the user-id hash in logs; empty: random per process (no linking "
                               "across restarts)")
    max_message_bytes: int = _f(4 * 1024 * 1024, "largest request or response message, bytes")
    max_concurrent_rpcs: int = _f(256, "calls in flight beyond this are refused with RESOURCE_EXHAUSTED")
    max_k: int = _f(100, "largest k a caller may ask for")
    default_k: int = _f(10, "k when the request leaves it at 0")
    max_history: int = _f(500, "longest inline history (item ids)")
    max_items_per_call: int = _f(1000, "most items / events / ids in one catalog call, and most exclude_item_ids "
                                       "in a query (item ids to explain are bounded by max_k)")
    max_text_chars: int = _f(2000, "longest free-text query or feedback reason")
    min_llm_budget_s: float = _f(1.0, "when the caller's remaining deadline is below this, template "
                                      "justifications are returned instead of calling the LLM")
    deadline_margin_s: float = _f(0.15, "kept back from the caller's deadline for ranking and the reply")
    explain_deadline_s: float = _f(30.0, "LLM time budget for a call without a deadline")
    batch_concurrency: int = _f(4, "ExplainBatch requests worked on at once per stream")
    ranker_threads: int = _f(4, "worker threads for ranking and catalog calls")
    search_threads: int = _f(1, "OpenMP threads of each ranking thread (vector search, tower forward pass). "
                                "A call ranks one query, so fanning out costs more than it saves under "
                                "concurrent load (one FAISS search on 2 cores: ~8 ms with 2 threads, ~0.2 ms with 1)")
    batch_max_size: int = _f(32, "Recommend calls ranked together: one user-tower pass and one index search")
    batch_max_wait_ms: float = _f(1.0, "how long the first Recommend call of a batch waits for others to join "
                                       "(0: batch only the calls that queued while the previous batch ran)")
    batch_in_flight: int = _f(2, "Recommend batches worked on at once")
    justification_cache_size: int = _f(50_000, "justifications kept in memory (LRU) so a repeated Explain / "
                                               "Recommend(explain) makes no LLM call; 0 disables the cache")
    grace_s: float = _f(20.0, "on SIGTERM, how long in-flight calls may take to finish")
    zero_shot: bool = _f(False, "serve the untuned MiniLM ranker (no training, no trained model needed)")
    train_if_missing: bool = _f(True, "on start, train the ranker when no trained model exists")
    model_watch_s: float = _f(2.0, "how often the server checks <workdir>/models/current for a newly promoted "
                                   "ranker version and swaps it in without a restart (SIGHUP checks at once); "
                                   "0 disables the watch")

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535 (got {self.port})")
        if not -1 <= self.metrics_port <= 65535:
            raise ValueError(f"metrics_port must be in -1..65535 (got {self.metrics_port})")
        if not -1 <= self.http_port <= 65535:
            raise ValueError(f"http_port must be in -1..65535 (got {self.http_port})")
        if self.llm not in LLM_MODES:
            raise ValueError(f"llm must be one of {LLM_MODES} (got {self.llm!r})")
        if self.llm == "url" and not self.vllm_url:
            raise ValueError("vllm_url must be set when llm='url'")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("tls_client_ca needs tls_cert and tls_key (mutual TLS is TLS first)")
        if self.log_user_ids not in ("hash", "plain", "off"):
            raise ValueError(f"log_user_ids must be hash, plain or off (got {self.log_user_ids!r})")
        for name in ("tls_cert", "tls_key", "tls_client_ca", "auth_tokens_file"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise ValueError(f"{name} must be a readable file (got {path!r})")
        for name in ("max_message_bytes", "max_concurrent_rpcs", "max_k", "max_history",
                     "max_items_per_call", "max_text_chars", "batch_concurrency", "ranker_threads",
                     "search_threads", "batch_max_size", "batch_in_flight"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.model_watch_s < 0:
            raise ValueError(f"model_watch_s must be >= 0 (got {self.model_watch_s})")
        self.token_table()          # a bad token entry is a configuration error that names its line
        if not 1 <= self.default_k <= self.max_k:
            raise ValueError(f"default_k must be in 1..max_k={self.max_k} (got {self.default_k})")
        for name in ("min_llm_budget_s", "deadline_margin_s", "explain_deadline_s", "grace_s", "batch_max_wait_ms",
                     "justification_cache_size"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (got {getattr(self, name)})")

    # -- sources ------------------------------------------------------------------
    @classmethod
    def load(cls, file: str | Path | None = None, env: typing.Mapping[str, str] | None = None,
             **overrides) -> "ServerConfig":
        """Defaults < file < environment < overrides (None values in overrides are ignored)."""
        values: dict[str, object] = {}
        if file:
            with open(file, "rb") as fh:
                data = tomllib.load(fh)
            data = data.get("server", data)
            unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
            if unknown:
                raise ValueError(f"{file}: unknown config keys {sorted(unknown)}")
            values.update(data)
        env = os.environ if env is None else env
        for f in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _parse(cls._type(f), raw, ENV_PREFIX + f.name.upper())
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def _type(cls, f: dataclasses.Field) -> type:
        return typing.get_type_hints(cls)[f.name]

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """One flag per field, defaulting to None so that file and environment still apply."""
        for f in dataclasses.fields(cls):
            flag = "--" + f.name.replace("_", "-")
            help_text = f"{f.metadata['help']} (default: {f.default!r}; env {ENV_PREFIX}{f.name.upper()})"
            if cls._type(f) is bool:
                parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                    default=None, help=help_text)
            else:
                parser.add_argument(flag, dest=f.name, type=cls._type(f), default=None, help=help_text)

    @classmethod
    def from_args(cls, args: argparse.Namespace, file: str | Path | None = None) -> "ServerConfig":
        return cls.load(file, **{f.name: getattr(args, f.name, None) for f in dataclasses.fields(cls)})

    @property
    def limits(self) -> Limits:
        """The request limits, shared by the server's conversion and the ranker (`core.validation`)."""
        return Limits(max_k=self.max_k, max_text_chars=self.max_text_chars, max_history=self.max_history,
                      max_ids=self.max_items_per_call)

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    def token_table(self):
        """The scoped tokens from auth_tokens_file, auth_tokens and auth_token (empty: no auth)."""
        from server.auth import TokenTable
        return TokenTable.load(self.auth_tokens_file, self.auth_tokens, self.auth_token)

    def resolved_workdir(self) -> Path:
        from store.paths import default_workdir
        return Path(self.workdir).expanduser().resolve() if self.workdir else default_workdir()


def _parse(tp: type, raw: str, name: str):
    if tp is bool:
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"{name} must be a boolean (got {raw!r})")
    try:
        return tp(raw)
    except ValueError:
        raise ValueError(f"{name} must be {tp.__name__} (got {raw!r})") from None


def documentation() -> str:
    """A Markdown table of every setting, for the README."""
    lines = ["| setting | env | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(ServerConfig):
        lines.append(f"| `{f.name}` | `{ENV_PREFIX}{f.name.upper()}` | `{f.default!r}` | {f.metadata['help']} |")
    return "\n".join(lines)
