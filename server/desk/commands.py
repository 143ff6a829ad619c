"""`explainrec desk` (the support-agent page) and `explainrec mcp` (tools for chat assistants), both
calling a running ExplainRec gRPC service. Light at import time."""
from __future__ import annotations

import argparse
import os


def _target_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default=os.environ.get("EXPLAINREC_TARGET", "127.0.0.1:50051"),
                   help="host:port of the ExplainRec gRPC service (env EXPLAINREC_TARGET)")
    # the same TLS options as `explainrec query`
    p.add_argument("--tls-ca", default="", help="PEM root certificate to talk TLS to the service")
    p.add_argument("--tls-cert", default="", help="PEM client certificate, for a service that asks for mutual TLS")
    p.add_argument("--tls-key", default="", help="PEM private key of --tls-cert")


def _tls(args: argparse.Namespace, command: str):
    """ClientTLS from the flags; None (after a message naming the flag) when they do not fit together."""
    import sys
    from server.tls import ClientTLS
    try:
        return ClientTLS(args.tls_ca, args.tls_cert, args.tls_key)
    except ValueError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return None


def desk_arguments(p: argparse.ArgumentParser) -> None:
    _target_arguments(p)
    p.add_argument("--host", default="127.0.0.1", help="address of the page (0.0.0.0 for all interfaces)")
    p.add_argument("--port", type=int, default=8080, help="port of the page; 0 picks a free one")


def desk(args: argparse.Namespace) -> int:
    import asyncio
    import sys
    from server.desk.web import ServiceUnreachable, run_desk
    tls = _tls(args, "desk")
    if tls is None:
        return 2
    try:
        return asyncio.run(run_desk(args.target, args.host, args.port, tls))
    except ServiceUnreachable as exc:
        print(f"desk: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:          # a --target that is not host:port
        print(f"desk: --{exc}", file=sys.stderr)
        return 2


def mcp_arguments(p: argparse.ArgumentParser) -> None:
    _target_arguments(p)
    p.add_argument("--token", default="", help="bearer token for the service (env EXPLAINREC_TOKEN)")
    p.add_argument("--transport", choices=["stdio", "http"], default="stdio",
                   help="stdio (an assistant starts this process) or streamable HTTP on --host/--port")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)


def mcp(args: argparse.Namespace) -> int:
    from server.desk.mcp_tools import run_mcp
    tls = _tls(args, "mcp")
    if tls is None:
        return 2
    return run_mcp(args.target, args.token or os.environ.get("EXPLAINREC_TOKEN", ""), args.transport,
                   args.host, args.port, tls)
