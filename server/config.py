"""The one typed configuration of the gRPC service.

Precedence, lowest first: the defaults below, a TOML file (`--config FILE`, a flat table or
a `[server]` table), environment variables `EXPLAINREC_SERVER_<FIELD>` (upper-case field
name), then command-line flags (`--<field-with-dashes>`). Every field's help text below is
also its flag's help, so `explainrec serve --help` is the documentation.
"""
from __future__ import annotations

import argparse
import enum
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from core.settings import Settings, setting
from core.validation import Limits
from server.auth import TokenTable
from store.paths import default_workdir

ENV_PREFIX = "EXPLAINREC_SERVER_"


class LLMMode(str, enum.Enum):
    """Where justifications come from."""
    LOCAL = "local"   # start the shipped model under vLLM
    URL = "url"       # a running vLLM at vllm_url
    OFF = "off"       # templates only

    def __str__(self) -> str:
        return self.value


LLM_MODES = tuple(m.value for m in LLMMode)


@dataclass
class ServerConfig(Settings):
    ENV_PREFIX: ClassVar[str] = ENV_PREFIX
    TOML_TABLE: ClassVar[str] = "server"

    host: str = setting("127.0.0.1", "address to bind (0.0.0.0 for all interfaces)")
    port: int = setting(50051, "gRPC port; 0 picks a free one")
    workdir: str = setting("", "working directory for the database, models and indexes "
                          "(empty: $EXPLAINREC_HOME or .explainrec/ in the checkout)")
    store: str = setting("", "the catalog: a SQLite file path, or postgresql://user@host:port/db shared by several "
                        "replicas (empty: $EXPLAINREC_STORE, else <workdir>/catalog.sqlite)")
    metrics_port: int = setting(9464, "Prometheus /metrics HTTP port; -1 disables it, 0 picks a free one")
    http_port: int = setting(-1, "support-desk web page port (it calls this service over gRPC); -1 disables it, "
                            "0 picks a free one")
    llm: LLMMode = setting(LLMMode.LOCAL, "justification engine: 'local' starts the shipped model under vLLM, "
                           "'url' uses --vllm-url, 'off' returns template justifications only")
    vllm_url: str = setting("", "OpenAI-compatible vLLM endpoint (with llm='url'), e.g. http://127.0.0.1:8000; "
                           "several comma-separated: requests are spread over those that answer")
    auth_token: str = setting("", "one token with every scope: when set, every call except health needs "
                             "'authorization: Bearer <token>' (prefer scoped tokens: auth_tokens_file)")
    auth_tokens_file: str = setting("", "file of scoped tokens, one 'name scopes sha256:<hex>' per line "
                                   "(scopes: read, write, admin; see server/README.md)")
    auth_tokens: str = setting("", "scoped tokens inline, ';'-separated 'name scopes secret' entries "
                              "(usually from the environment)")
    tls_cert: str = setting("", "PEM certificate chain; with tls_key the server speaks TLS only")
    tls_key: str = setting("", "PEM private key for tls_cert")
    tls_client_ca: str = setting("", "PEM CA bundle: with it, clients must present a certificate it signed (mutual TLS)")
    desk_tls_ca: str = setting("", "with TLS and http_port: the root the desk page trusts when it calls this service "
                              "(empty: tls_cert itself); it checks the certificate against the certificate's own "
                              "first name, as it dials loopback")
    desk_tls_cert: str = setting("", "with mutual TLS and http_port: the desk page's client certificate (signed by "
                                "tls_client_ca), as `explainrec query --tls-cert`")
    desk_tls_key: str = setting("", "PEM private key of desk_tls_cert")
    log_user_ids: str = setting("hash", "user ids in access log lines: 'hash' (keyed SHA-256, 12 hex digits), "
                                   "'plain' or 'off'")
    log_hash_key: str = setting("", "key of the user-id hash in logs; empty: random per process (no linking "
                               "across restarts)")
    max_message_bytes: int = setting(4 * 1024 * 1024, "largest request or response message, bytes")
    max_concurrent_rpcs: int = setting(256, "calls in flight beyond this are refused with RESOURCE_EXHAUSTED")
    max_k: int = setting(100, "largest k a caller may ask for")
    default_k: int = setting(10, "k when the request leaves it at 0")
    max_history: int = setting(500, "longest inline history (item ids)")
    max_items_per_call: int = setting(1000, "most items / events / ids in one catalog call, and most exclude_item_ids "
                                       "in a query (item ids to explain are bounded by max_k)")
    max_text_chars: int = setting(2000, "longest free-text query or feedback reason")
    min_llm_budget_s: float = setting(1.0, "when the caller's remaining deadline is below this, template "
                                      "justifications are returned instead of calling the LLM")
    deadline_margin_s: float = setting(1.0, "kept back from the caller's deadline for the templates and the reply "
                                       "(on a loaded machine 0.15 s let calls miss it: README, Reliability)")
    explain_deadline_s: float = setting(60.0, "most time the LLM gets per call: all of it without a caller's "
                                        "deadline, else what is left of that deadline up to this; each LLM call "
                                        "may use it to the end (README, Reliability)")
    batch_concurrency: int = setting(4, "ExplainBatch requests worked on at once per stream")
    ranker_threads: int = setting(4, "worker threads for ranking and catalog calls")
    warm_user_vectors: int = setting(20_000, "user vectors computed when the ranker loads (at start and on a model "
                                     "swap), for the most recently active shoppers, up to the ranker's user-vector "
                                     "cache size: their first Recommend skips the user tower (0: none)")
    search_threads: int = setting(1, "OpenMP threads of each ranking thread (vector search, tower forward pass). "
                                "A call ranks one query, so fanning out costs more than it saves under "
                                "concurrent load (one FAISS search on 2 cores: ~8 ms with 2 threads, ~0.2 ms with 1)")
    batch_max_size: int = setting(32, "Recommend calls ranked together: one user-tower pass and one index search")
    batch_max_wait_ms: float = setting(0.0, "how long the first Recommend call of a batch waits for others to join "
                                       "(0: batch only the calls that queued while the previous batch ran: a lone "
                                       "caller never waits, and under load the queue fills while batches run)")
    batch_resume_chunk: int = setting(2, "callers of a finished Recommend batch woken per event-loop turn (the rest "
                                      "in the next turns): a whole batch woken at once builds all its replies in "
                                      "one turn while timers and new calls wait")
    reply_bytes: bool = setting(True, "build a Recommend reply without justifications as bytes in the ranking thread, "
                                "from each item's cached bytes, instead of as a message on the event loop "
                                "(server/reply_bytes.py; off: the message path, for comparison)")
    batch_in_flight: int = setting(0, "Recommend batches worked on at once per process (0: one per core the process "
                                   "has, i.e. cores / workers, at least 1: a batch's forward pass and search use one "
                                   "core)")
    worker_cpu_affinity: bool = setting(True, "with several workers, run worker i on its own share of the CPUs "
                                        "(as nginx's worker_cpu_affinity auto): a worker's caches stay on its cores "
                                        "and its event loop never waits behind another worker's ranking; Linux only "
                                        "(server/cpu_placement.py)")
    ranking_thread_nice: int = setting(10, "added to the ranking threads' nice value (Linux: nice is per thread), so "
                                       "the event loop and gRPC's threads get the larger share of a core they "
                                       "share with a batch being ranked; 0: the same priority "
                                       "(server/cpu_placement.py)")
    ranking_yield: bool = setting(True, "the ranking threads yield the CPU between a batch's calls and stages, so an "
                                  "event loop or gRPC thread waiting for the core runs then, not at the kernel's next "
                                  "tick (core/cpu_yield.py)")
    gc_gen0_threshold: int = setting(50_000, "once loaded, freeze the loaded objects out of the garbage collector's "
                                     "walks and run young collections every this many allocations (0: Python's "
                                     "defaults); see server/gc_tuning.py")
    justification_cache_size: int = setting(50_000, "justifications kept in memory (LRU) so a repeated Explain / "
                                               "Recommend(explain) makes no LLM call; 0 disables the cache")
    workers: int = setting(1, "serving processes sharing the port (SO_REUSEPORT), each with its own ranker, caches "
                           "and GIL; the LLM stays one vLLM that they share. 0: one per CPU core")
    grace_s: float = setting(20.0, "on SIGTERM, how long in-flight calls may take to finish")
    zero_shot: bool = setting(False, "serve the untuned MiniLM ranker (no training, no trained model needed)")
    train_if_missing: bool = setting(True, "on start, train the ranker when no trained model exists")
    model_watch_s: float = setting(2.0, "how often the server checks <workdir>/models/current for a newly promoted "
                                   "ranker version and swaps it in without a restart (SIGHUP checks at once); "
                                   "0 disables the watch")

    def __post_init__(self) -> None:
        self.check_types()
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535 (got {self.port})")
        if not -1 <= self.metrics_port <= 65535:
            raise ValueError(f"metrics_port must be in -1..65535 (got {self.metrics_port})")
        if not -1 <= self.http_port <= 65535:
            raise ValueError(f"http_port must be in -1..65535 (got {self.http_port})")
        if self.llm == "url" and not self.vllm_url:
            raise ValueError("vllm_url must be set when llm='url'")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("tls_client_ca needs tls_cert and tls_key (mutual TLS is TLS first)")
        if bool(self.desk_tls_cert) != bool(self.desk_tls_key):
            raise ValueError("desk_tls_cert and desk_tls_key must be given together")
        for name in ("desk_tls_ca", "desk_tls_cert"):
            if getattr(self, name) and not self.tls_cert:
                raise ValueError(f"{name} is for a TLS service: it needs tls_cert and tls_key")
        if self.http_port >= 0 and self.tls_client_ca and not self.desk_tls_cert:
            raise ValueError("http_port with tls_client_ca: the desk page calls this service over mutual TLS and "
                             "needs desk_tls_cert and desk_tls_key (a client certificate signed by tls_client_ca)")
        if self.log_user_ids not in ("hash", "plain", "off"):
            raise ValueError(f"log_user_ids must be hash, plain or off (got {self.log_user_ids!r})")
        for name in ("tls_cert", "tls_key", "tls_client_ca", "desk_tls_ca", "desk_tls_cert", "desk_tls_key",
                     "auth_tokens_file"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise ValueError(f"{name} must be a readable file (got {path!r})")
        for name in ("max_message_bytes", "max_concurrent_rpcs", "max_k", "max_history",
                     "max_items_per_call", "max_text_chars", "batch_concurrency", "ranker_threads",
                     "search_threads", "batch_max_size", "batch_resume_chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (got {getattr(self, name)})")
        if not 0 <= self.ranking_thread_nice <= 39:
            raise ValueError(f"ranking_thread_nice must be in 0..39 (got {self.ranking_thread_nice})")
        if self.batch_in_flight < 0:
            raise ValueError(f"batch_in_flight must be >= 0 (got {self.batch_in_flight})")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0 (got {self.workers})")
        if self.model_watch_s < 0:
            raise ValueError(f"model_watch_s must be >= 0 (got {self.model_watch_s})")
        self.token_table()          # a bad token entry is a configuration error that names its line
        if not 1 <= self.default_k <= self.max_k:
            raise ValueError(f"default_k must be in 1..max_k={self.max_k} (got {self.default_k})")
        for name in ("min_llm_budget_s", "deadline_margin_s", "explain_deadline_s", "grace_s", "batch_max_wait_ms",
                     "gc_gen0_threshold",
                     "justification_cache_size"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (got {getattr(self, name)})")

    @classmethod
    def from_args(cls, args: argparse.Namespace, file: str | Path | None = None,  # type: ignore[override]
                  env: typing.Mapping[str, str] | None = None, **overrides: object) -> "ServerConfig":
        """Defaults < TOML file (flat or a [server] table) < EXPLAINREC_SERVER_* < flags given."""
        return super().from_args(args, file, env, **overrides)

    @property
    def limits(self) -> Limits:
        """The request limits, shared by the server's conversion and the ranker (`core.validation`)."""
        return Limits(max_k=self.max_k, max_text_chars=self.max_text_chars, max_history=self.max_history,
                      max_ids=self.max_items_per_call)

    def batches_in_flight(self) -> int:
        """batch_in_flight, or when 0 one per core of this process (cores shared by the workers)."""
        if self.batch_in_flight:
            return self.batch_in_flight
        from server.workers import worker_count
        return max(1, len(os.sched_getaffinity(0)) // worker_count(self.workers))

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    def desk_tls(self):
        """The desk page's ClientTLS for calling this service on loopback (None: plaintext). It trusts
        desk_tls_ca, else the service's own certificate, and checks that certificate against a name it
        lists (the page dials an IP the certificate need not name)."""
        if not self.tls:
            return None
        from server.tls import ClientTLS, certificate_host_name
        return ClientTLS(self.desk_tls_ca or self.tls_cert, self.desk_tls_cert, self.desk_tls_key,
                         server_name=certificate_host_name(self.tls_cert), option="--desk-tls-")

    def token_table(self):
        """The scoped tokens from auth_tokens_file, auth_tokens and auth_token (empty: no auth)."""
        return TokenTable.load(self.auth_tokens_file, self.auth_tokens, self.auth_token)

    def resolved_workdir(self) -> Path:
        return Path(self.workdir).expanduser().resolve() if self.workdir else default_workdir()


def documentation() -> str:
    """A Markdown table of every setting, for the README."""
    return ServerConfig.documentation()
