#!/usr/bin/env bash
# Regenerates the Python protobuf/gRPC modules from protocol/meshroute.proto (they are committed).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m grpc_tools.protoc -I protocol --python_out=src/meshroute/protocol \
  --grpc_python_out=src/meshroute/protocol --pyi_out=src/meshroute/protocol protocol/meshroute.proto
# grpc_tools writes an absolute-package import; make it relative to our package.
sed -i 's/^import meshroute_pb2 as meshroute__pb2/from meshroute.protocol import meshroute_pb2 as meshroute__pb2/' \
  src/meshroute/protocol/meshroute_pb2_grpc.py
