"""`explainrec prepare-model` and `explainrec eval-explanations` (no heavy imports at module level)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from store.cli import add_store_argument, add_workdir_argument, resolve_workdir


def prepare_model_arguments(p: argparse.ArgumentParser) -> None:
    add_workdir_argument(p)
    p.add_argument("--force", action="store_true", help="rebuild even if the model directory is ready")


def prepare_model(args: argparse.Namespace) -> int:
    from explainer.prepare import prepare_model as build
    path = build(resolve_workdir(args), force=args.force)
    print(json.dumps({"model_dir": str(path)}))
    return 0


def eval_explanations_arguments(p: argparse.ArgumentParser) -> None:
    add_workdir_argument(p)
    add_store_argument(p)
    p.add_argument("--users", type=int, default=40, help="number of test users (default 40)")
    p.add_argument("--k", type=int, default=5, help="recommendations per user (default 5)")
    p.add_argument("--json", type=Path, default=None, help="write the metrics to this JSON file")
    p.add_argument("--audit", type=Path, default=None, help="write 50 random cases (facts, text, verdict) here")
    p.add_argument("--cases", type=Path, default=None, help="write every case (facts, samples, returned text) here")
    p.add_argument("--labels", type=Path, default=None,
                   help="hand-labelled cases to measure the verifier's agreement on "
                        "(default: tests/data/explanations_labelled.jsonl when present)")
    p.add_argument("--vllm-url", default="", help="a running vLLM server (default: start a local one)")
    p.add_argument("--n-samples", type=int, default=None, help="samples per item (default: config)")
    p.add_argument("--template", default=None, help="prompt template name (default: config)")
    p.add_argument("--seed", type=int, default=0, help="which test users are drawn (not sent to vLLM)")


def eval_explanations(args: argparse.Namespace) -> int:
    from explainer.evaluate import run_from_args
    report = run_from_args(args, resolve_workdir(args))
    print(json.dumps(report, indent=2))
    return 0 if report else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(1)
