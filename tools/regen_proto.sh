#!/usr/bin/env bash
# Regenerate actc/proto/framework_pb2.py from actc/proto/framework.proto.
# The schema mirrors Paddle's legacy ProgramDesc (same field numbers) so actc reads
# .pdmodel files without importing Paddle. Uses grpcio-tools 1.62 (protobuf 4.25 gencode,
# no runtime version pin) so current protobuf runtimes (4.25 to 7.x) import it and actc
# never forces a protobuf upgrade: pip install "grpcio-tools==1.62.3"
set -euo pipefail
cd "$(dirname "$0")/.."
python -m grpc_tools.protoc -Iactc/proto --python_out=actc/proto actc/proto/framework.proto
