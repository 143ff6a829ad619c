"""Scoped bearer tokens: which token may call which RPC.

Scopes (independent: give a token every scope it needs, e.g. `read,write`):
    read   Recommend, Explain, StreamRecommend, ExplainBatch, GetHistory, GetItems
    write  RecordEvents, SubmitFeedback
    admin  UpsertItems, DeleteItems, and every other ExplainRec RPC (model reloads included):
           an RPC not listed below needs admin, so a new RPC is closed until someone opens it
Health is open to everyone; reflection needs a valid token of any scope.

Tokens come from a file (`auth_tokens_file`) and/or `auth_tokens` (env
EXPLAINREC_SERVER_AUTH_TOKENS, entries separated by ';'), one entry per line:

    # name      scopes        secret: sha256:<hex of the token's SHA-256>, or the token itself
    chatbot     read          sha256:4f2d...
    ingest      read,write    sha256:...

Only SHA-256 digests are kept in memory; a presented token is hashed and compared with every
entry by `hmac.compare_digest` (no early exit), so timing says nothing about which entry or how
much of it matched. The older single `auth_token` is one entry named `default` with every scope.
`explainrec token --name N --scopes read` makes a random token and prints its line.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

SCOPES = ("read", "write", "admin")
SERVICE_PREFIX = "/explainrec.v1.ExplainRec/"
METHOD_SCOPES = {
    "Recommend": "read", "Explain": "read", "StreamRecommend": "read", "ExplainBatch": "read",
    "GetHistory": "read", "GetItems": "read",
    "RecordEvents": "write", "SubmitFeedback": "write",
    "UpsertItems": "admin", "DeleteItems": "admin",
}
HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIX = "/grpc.reflection."
ANY_SCOPE = ""


def required_scope(method: str) -> str | None:
    """None: open (health); ANY_SCOPE: any valid token (reflection); else the scope the RPC needs."""
    if method.startswith(HEALTH_PREFIX):
        return None
    if method.startswith(REFLECTION_PREFIX):
        return ANY_SCOPE
    if method.startswith(SERVICE_PREFIX):
        return METHOD_SCOPES.get(method[len(SERVICE_PREFIX):], "admin")
    return "admin"


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class Token:
    name: str
    scopes: frozenset[str]
    sha256: bytes


class TokenTable:
    def __init__(self, tokens: list[Token]):
        names = [t.name for t in tokens]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"auth tokens: names must be unique (repeated: {sorted(dup)})")
        self.tokens = tokens

    def __bool__(self) -> bool:
        return bool(self.tokens)

    @staticmethod
    def parse_entry(entry: str, where: str) -> Token:
        parts = entry.split()
        if len(parts) != 3:
            raise ValueError(f"{where}: expected 'name scopes secret' (got {len(parts)} fields)")
        name, scopes_text, secret = parts
        scopes = frozenset(s.strip() for s in scopes_text.split(",") if s.strip())
        bad = scopes - set(SCOPES)
        if not scopes or bad:
            raise ValueError(f"{where}: scopes must be a comma-separated subset of {SCOPES} (got {scopes_text!r})")
        if secret.startswith("sha256:"):
            try:
                sha = bytes.fromhex(secret[len("sha256:"):])
            except ValueError:
                sha = b""
            if len(sha) != 32:
                raise ValueError(f"{where}: sha256: must be followed by 64 hex digits")
        else:
            if len(secret) < 16:
                raise ValueError(f"{where}: a token must have at least 16 characters")
            sha = digest(secret)
        return Token(name, scopes, sha)

    @classmethod
    def load(cls, file: str | Path | None = "", inline: str = "", single_token: str = "") -> "TokenTable":
        tokens: list[Token] = []
        if file:
            for n, line in enumerate(Path(file).read_text().splitlines(), 1):
                line = line.split("#", 1)[0].strip()
                if line:
                    tokens.append(cls.parse_entry(line, f"{file}:{n}"))
        for n, entry in enumerate(e.strip() for e in inline.split(";")):
            if entry:
                tokens.append(cls.parse_entry(entry, f"auth_tokens entry {n + 1}"))
        if single_token:
            tokens.append(Token("default", frozenset(SCOPES), digest(single_token)))
        return cls(tokens)

    def authenticate(self, presented: str) -> Token | None:
        """The entry whose token this is, or None. Compares with every entry, in constant time each."""
        got = digest(presented)
        found = None
        for t in self.tokens:
            if hmac.compare_digest(got, t.sha256):
                found = t
        return found


def new_token_line(name: str, scopes: str) -> tuple[str, str]:
    """(token, the line for a token file holding only its digest)."""
    token = secrets.token_urlsafe(32)
    line = f"{name} {scopes} sha256:{digest(token).hex()}"
    TokenTable.parse_entry(line, "new token")          # validates name and scopes
    return token, line
