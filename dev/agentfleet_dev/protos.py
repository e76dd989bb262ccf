"""`make protos`: the Python code of proto/ (messages, typed stubs and the gRPC service), made by
the pinned grpcio-tools and committed under operator/agentfleet/frontends/grpc/gen/.

protoc writes `from agentfleet.v1 import compute_agent_pb2` into the service module (the proto
package as a Python package), which would name our own `agentfleet` package; the one rewrite
below makes that import relative, so the generated modules live inside the package that serves
them. A unit test generates into a temporary directory and fails when the committed files differ.
"""

from __future__ import annotations

import importlib.resources
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = ROOT / "proto"
GENERATED = ROOT / "operator" / "agentfleet" / "frontends" / "grpc" / "gen"
PROTOS = ("agentfleet/v1/compute_agent.proto",)
INIT = '"""Generated from proto/ by `make protos` (grpcio-tools). Do not edit."""\n'


def generate(out: Path) -> list[Path]:
    """Write the generated modules (and the package's __init__.py) into `out`; their paths."""
    from grpc_tools import protoc  # dev-only: the operator image has no code generator

    well_known = importlib.resources.files("grpc_tools") / "_proto"
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "__init__.py"]
    written[0].write_text(INIT)
    with tempfile.TemporaryDirectory() as scratch:
        args = [
            "grpc_tools.protoc",
            f"--proto_path={PROTO_ROOT}",
            f"--proto_path={well_known}",
            f"--python_out={scratch}",
            f"--pyi_out={scratch}",
            f"--grpc_python_out={scratch}",
            *(str(PROTO_ROOT / proto) for proto in PROTOS),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {', '.join(PROTOS)}")
        for proto in PROTOS:
            package = Path(proto).parent
            prefix = ".".join(package.parts)
            for made in sorted((Path(scratch) / package).iterdir()):
                text = made.read_text().replace(f"from {prefix} import ", "from . import ")
                (out / made.name).write_text(text)
                written.append(out / made.name)
    return written


def main() -> None:
    for path in generate(GENERATED):
        print(path.relative_to(ROOT), file=sys.stderr)


if __name__ == "__main__":
    main()
