#!/usr/bin/env bash
# The main job on the embedded defaults, from a fresh clone: set up, then serve.
# `explainrec serve` ingests the Scientific data, trains the ranker and prepares the
# LLM when their outputs are missing (work already done is skipped), then starts the
# gRPC service with a local vLLM server. Extra arguments go to `explainrec serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/explainrec serve "$@"
