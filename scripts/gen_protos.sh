#!/usr/bin/env bash
# Regenerates the gRPC Python code from protos/**/*.proto (see protos/generate.py).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m protos.generate "$@"
