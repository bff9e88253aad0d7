#!/usr/bin/env bash
# Installs the client's development files (component tokenbroker_dev: protos,
# generated C++ stubs, the static client library, its CMake package config
# and the Python stubs) into a temporary prefix, then configures, builds and
# runs a consumer project that does find_package(tokenbroker CONFIG) and
# links tokenbroker::client, and imports the installed Python package.
#
# Usage: install_test.sh BUILD_DIR CONSUMER_SOURCE_DIR PYTHON
set -euo pipefail
build_dir=$1 consumer_dir=$2 python=$3

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cmake --install "$build_dir" --prefix "$prefix" --component tokenbroker_dev >"$work/install.log"
for f in \
  include/tokenbroker/client/lib/client.h \
  include/tokenbroker/anypoint/tokenbroker/v1/token_broker.grpc.pb.h \
  share/tokenbroker/proto/anypoint/tokenbroker/v1/token_broker.proto \
  share/tokenbroker/python/anypoint/tokenbroker/v1/token_broker_pb2_grpc.py; do
  [[ -f $prefix/$f ]] || { echo "install_test: $f was not installed" >&2; exit 1; }
done
ls "$prefix"/lib*/cmake/tokenbroker/tokenbrokerConfig.cmake >/dev/null

cmake -S "$consumer_dir" -B "$work/build" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_BUILD_TYPE=Debug >"$work/configure.log" ||
  { cat "$work/configure.log" >&2; exit 1; }
cmake --build "$work/build" -j2 >"$work/build.log" ||
  { cat "$work/build.log" >&2; exit 1; }
# Port 1 on loopback: nothing listens there, so UNAVAILABLE at once.
"$work/build/consumer" 127.0.0.1:1

PYTHONPATH=$prefix/share/tokenbroker/python "$python" -c \
  'from anypoint.tokenbroker.v1 import token_broker_pb2_grpc, broker_admin_pb2; print("python package ok")'
