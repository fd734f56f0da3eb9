#!/usr/bin/env python3
"""Generates the Python client's gRPC stubs from proto/ into headway_client/_proto/.

Runs Debian's protoc and grpc_python_plugin (protobuf-compiler, protobuf-compiler-grpc)
and rewrites the generated absolute imports ("from headway.v1 import ...") to point
inside the headway_client package, so that nothing is installed as a top-level
package: in particular grpc/health/v1/health.proto does not become a Python package
named "grpc" that would shadow grpcio's.

Usage: generate_stubs.py [OUTPUT_DIR]   (default: headway_client/_proto beside this
script). The stubs are checked in; `generate_stubs.py --check` (a test) regenerates
them to the side and fails, naming the files, when the checked-in ones are stale.
"""
import filecmp
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "proto"
PACKAGE = "headway_client._proto"
PROTOS = [
    "headway/v1/inference.proto",
    "headway/v1/management.proto",
    "headway/v1/model_config.proto",
    "inference/grpc_predict_v2.proto",
    "grpc/health/v1/health.proto",
]
# Top-level proto folders whose generated modules move under PACKAGE.
TOP_LEVEL = ("headway", "inference", "grpc.health")


def rewrite_imports(path: pathlib.Path) -> None:
    text = path.read_text()
    for top in TOP_LEVEL:
        text = re.sub(
            rf"^from {re.escape(top)}(\.[\w.]+)? import",
            lambda m, top=top: f"from {PACKAGE}.{top}{m.group(1) or ''} import",
            text,
            flags=re.M,
        )
    path.write_text(text)


def generate(output: pathlib.Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        scratch_path = pathlib.Path(scratch)
        subprocess.run(
            [
                "protoc",
                f"--proto_path={PROTO_ROOT}",
                f"--python_out={scratch_path}",
                f"--grpc_out={scratch_path}",
                "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin",
                *PROTOS,
            ],
            check=True,
        )
        for module in scratch_path.rglob("*.py"):
            rewrite_imports(module)
        for folder in [scratch_path, *[p for p in scratch_path.rglob("*") if p.is_dir()]]:
            (folder / "__init__.py").touch()
        if output.exists():
            shutil.rmtree(output)
        shutil.copytree(scratch_path, output)


def check(checked_in: pathlib.Path) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        fresh = pathlib.Path(scratch) / "_proto"
        generate(fresh)
        stale = []
        for path in sorted(fresh.rglob("*.py")):
            relative = path.relative_to(fresh)
            old = checked_in / relative
            if not old.exists() or not filecmp.cmp(path, old, shallow=False):
                stale.append(str(relative))
        stale += [str(p.relative_to(checked_in)) for p in checked_in.rglob("*.py")
                  if not (fresh / p.relative_to(checked_in)).exists()]
    if stale:
        print("stale Python stubs (run client/python/generate_stubs.py): " +
              ", ".join(stale))
        return 1
    print("Python stubs match proto/")
    return 0


if __name__ == "__main__":
    default = HERE / "headway_client" / "_proto"
    if sys.argv[1:] == ["--check"]:
        sys.exit(check(default))
    generate(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else default)
