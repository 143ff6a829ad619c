"""`explainrec` command line: a thin, lazy dispatcher.

Each subcommand lives in the package that does the work, as a pair of functions in a
light module (no heavy imports at module level): `<name>_arguments(parser)` adds the
flags, `<name>(args) -> int` runs it. `serve` never imports training code.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# subcommand -> (module, function, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "ingest": ("store.cli", "ingest", "load the catalog and events into the SQLite store"),
    "backup": ("store.cli", "backup", "copy the SQLite store to a file while the service runs"),
    "restore": ("store.cli", "restore", "put a backup in place of the store (service stopped)"),
    "train": ("ranker.cli", "train", "fine-tune the two-tower ranker and build its index"),
    "eval-ranker": ("ranker.cli", "eval_ranker", "full-ranking evaluation against popularity and zero-shot baselines"),
    "retrain": ("ranker.cli", "retrain", "warm-start the ranker on live events and feedback; promote if not worse"),
    "models": ("ranker.cli", "models", "list the ranker's model versions with their metrics"),
    "prepare-model": ("explainer.cli", "prepare_model", "turn the shipped GGUF into a vLLM-servable model directory"),
    "eval-explanations": ("explainer.cli", "eval_explanations", "measure justification quality on test users"),
    "serve": ("server.commands", "serve", "run the gRPC service (sets up what is missing)"),
    "token": ("server.commands", "token", "make a scoped bearer token and its hashed line for the token file"),
    "query": ("server.commands", "query", "call a running service from the command line"),
    "desk": ("server.desk.commands", "desk", "the support-agent web page, calling a running service"),
    "mcp": ("server.desk.commands", "mcp", "MCP tools for chat assistants (stdio or HTTP), calling a running service"),
    "explain-batch": ("explainer.batch.cli", "explain_batch", "justify many (user, item) pairs, resumably"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="explainrec", description="Recommendations that say why.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, func, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:  # a part not installed / not built yet
            p.set_defaults(_missing=f"{name}: unavailable ({exc})")
            continue
        getattr(mod, f"{func}_arguments")(p)
        p.set_defaults(_run=(module, func))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.command:
        parser.print_help()
        return 2
    if getattr(args, "_missing", None):
        print(args._missing, file=sys.stderr)
        return 2
    module, func = args._run
    return int(getattr(importlib.import_module(module), func)(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
