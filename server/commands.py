"""`explainrec serve` and `explainrec query`. Light at import time: the dispatcher imports this
module to build its parser, so everything heavy is imported inside the functions."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


# -- serve --------------------------------------------------------------------------------
def serve_arguments(p: argparse.ArgumentParser) -> None:
    from server.config import ServerConfig
    p.add_argument("--config", type=Path, default=None,
                   help="TOML file with server settings (flat or under [server]); env and flags override it")
    p.add_argument("--no-llm", action="store_true", help="template justifications only (same as --llm off)")
    ServerConfig.add_arguments(p)


def serve(args: argparse.Namespace) -> int:
    import asyncio
    from server.config import ServerConfig
    if args.no_llm:
        args.llm = "off"
    elif getattr(args, "vllm_url", None) and args.llm is None:
        args.llm = "url"
    try:
        config = ServerConfig.from_args(args, args.config)
    except (ValueError, OSError) as exc:
        print(f"serve: bad configuration: {exc}", file=sys.stderr)
        return 2
    from server.workers import worker_count
    if worker_count(config.workers) > 1:
        from server.workers import run_workers
        return asyncio.run(run_workers(config))
    from server.run import run_server
    return asyncio.run(run_server(config))


# -- query --------------------------------------------------------------------------------
def query_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default="127.0.0.1:50051",
                   help="host:port of the service; several comma-separated (h1:p1,h2:p2) or "
                        "dns:///name:port to balance round-robin over replicas")
    p.add_argument("--token", default="", help="bearer token (env EXPLAINREC_TOKEN)")
    p.add_argument("--tls-ca", default="", help="PEM root certificate to talk TLS")
    p.add_argument("--tls-cert", default="", help="PEM client certificate, for mutual TLS")
    p.add_argument("--tls-key", default="", help="PEM private key of --tls-cert")
    p.add_argument("--timeout", type=float, default=30.0, help="deadline of the call, seconds")
    sub = p.add_subparsers(dest="query_command", metavar="CALL", required=True)

    r = sub.add_parser("recommend", help="ranked items (with --explain: and why)")
    r.add_argument("--user", default="", help="user id")
    r.add_argument("--history", default="", help="comma-separated item ids, oldest first")
    r.add_argument("--text", default="", help="free-text query")
    r.add_argument("-k", type=int, default=10)
    r.add_argument("--category", default="")
    r.add_argument("--exclude", default="", help="comma-separated item ids")
    r.add_argument("--explain", action="store_true", help="attach justifications")
    r.add_argument("--stream", action="store_true", help="StreamRecommend: one JSON line per message")

    e = sub.add_parser("explain", help="why these items for this user")
    e.add_argument("--user", default="")
    e.add_argument("--history", default="")
    e.add_argument("--items", required=True, help="comma-separated item ids")

    f = sub.add_parser("feedback", help="record a click / purchase / dismiss / justification rating")
    f.add_argument("--user", required=True)
    f.add_argument("--item", required=True)
    f.add_argument("--kind", default="rating", choices=["click", "purchase", "dismiss", "rating"])
    f.add_argument("--helpful", choices=["yes", "no"], default=None)
    f.add_argument("--reason", default="")
    f.add_argument("--request-id", default="")

    sub.add_parser("health", help="the service's health status (exit code 0 only when SERVING)")


def _ids(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def query(args: argparse.Namespace) -> int:
    import os

    import grpc
    from google.protobuf.json_format import MessageToDict

    from server.client import ExplainRecClient

    def show(msg) -> None:
        print(json.dumps(MessageToDict(msg, preserving_proto_field_name=True), ensure_ascii=False))

    try:
        client = ExplainRecClient(args.target, token=args.token or os.environ.get("EXPLAINREC_TOKEN", ""),
                                  tls_ca_file=args.tls_ca, tls_cert_file=args.tls_cert,
                              tls_key_file=args.tls_key, timeout_s=args.timeout)
    except ValueError as exc:
        msg = str(exc)     # "target: ..." or "--tls-cert ...": name the flag
        print(f"query: {msg if msg.startswith('--') else '--' + msg}", file=sys.stderr)
        return 2
    try:
        c = args.query_command
        if c == "recommend" and args.stream:
            for msg in client.stream_recommend(args.user, _ids(args.history), args.text, args.k, args.category,
                                               _ids(args.exclude)):
                show(msg)
        elif c == "recommend":
            show(client.recommend(args.user, _ids(args.history), args.text, args.k, args.category,
                                  _ids(args.exclude), explain=args.explain))
        elif c == "explain":
            show(client.explain(_ids(args.items), args.user, _ids(args.history)))
        elif c == "feedback":
            helpful = None if args.helpful is None else args.helpful == "yes"
            fid = client.submit_feedback(args.user, args.item, args.kind, helpful, args.reason, args.request_id)
            print(json.dumps({"feedback_id": fid}))
        elif c == "health":
            status = client.health()
            print(json.dumps({"status": status}))
            return 0 if status == "SERVING" else 1     # usable as a container health check
    except grpc.RpcError as err:
        print(json.dumps({"error": err.code().name, "message": err.details()}), file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


# -- token --------------------------------------------------------------------------------
def token_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", required=True, help="who holds the token (shown in access logs)")
    p.add_argument("--scopes", required=True, help="comma-separated: read, write, admin")


def token(args: argparse.Namespace) -> int:
    """Prints a new random token (give it to the caller) and the line for the token file (only its hash)."""
    from server.auth import new_token_line
    try:
        secret, line = new_token_line(args.name, args.scopes)
    except ValueError as exc:
        print(f"token: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"token": secret, "tokens_file_line": line}))
    return 0
