"""Regenerates the gRPC Python code (with .pyi stubs) from every .proto under protos/.

    python -m protos.generate           # write the *_pb2.py, *_pb2.pyi, *_pb2_grpc.py files
    python -m protos.generate --check   # exit 1 if the committed files differ from a fresh run

The include root is the repository root, so the generated imports read
`from protos.explainrec.v1 import explainrec_pb2`. The output is never edited by hand.
"""
from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

PROTOS_DIR = Path(__file__).resolve().parent
ROOT = PROTOS_DIR.parent
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def proto_files() -> list[Path]:
    return sorted(PROTOS_DIR.rglob("*.proto"))


def generate(out_dir: Path = ROOT) -> list[Path]:
    """Runs protoc into `out_dir` (the repository root by default); returns the files written."""
    from grpc_tools import protoc
    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    rels = [str(p.relative_to(ROOT)) for p in proto_files()]
    args = ["grpc_tools.protoc", f"-I{ROOT}", f"-I{well_known}", f"--python_out={out_dir}",
            f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}", *rels]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    return [Path(out_dir) / (r.removesuffix(".proto") + s) for r in rels for s in SUFFIXES]


def stale_files() -> list[str]:
    """Generated files that are missing or differ from what protoc produces now."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        stale = []
        for f in fresh:
            committed = ROOT / f.relative_to(tmp)
            if not committed.exists() or not filecmp.cmp(f, committed, shallow=False):
                stale.append(str(committed.relative_to(ROOT)))
        return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the generated code is current")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        if stale:
            print("stale generated code (run `python -m protos.generate`): " + ", ".join(stale), file=sys.stderr)
            return 1
        print("generated code is current")
        return 0
    for f in generate():
        print(f.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
