"""Python modules for the product's .proto files, generated when imported.

  import seg_protos
  stats_pb2, stats_pb2_grpc = seg_protos.load("stats", grpc=True)
  segmentation_pb2, = seg_protos.load("segmentation")

The examples need nothing but proto/*.proto: grpc_tools (Debian
python3-grpc-tools) compiles them into a temporary directory, removed at
exit. proto_dir defaults to the repository's proto/ next to examples/.
"""
import atexit
import importlib
import pathlib
import shutil
import sys
import tempfile

from grpc_tools import protoc  # Debian: python3-grpc-tools

PROTO_DIR = pathlib.Path(__file__).resolve().parent.parent / "proto"


def load(name, grpc=False, proto_dir=None):
    proto_dir = pathlib.Path(proto_dir or PROTO_DIR)
    source = proto_dir / f"{name}.proto"
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such proto file (pass --proto-dir)")
    out = tempfile.mkdtemp(prefix="seg-protos-")
    atexit.register(shutil.rmtree, out, True)
    args = ["protoc", f"-I{proto_dir}", f"--python_out={out}"]
    if grpc:
        args.append(f"--grpc_python_out={out}")
    if protoc.main(args + [str(source)]) != 0:
        raise RuntimeError(f"protoc failed on {source}")
    sys.path.insert(0, out)
    modules = [importlib.import_module(f"{name}_pb2")]
    if grpc:
        modules.append(importlib.import_module(f"{name}_pb2_grpc"))
    return tuple(modules)
