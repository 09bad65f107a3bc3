#!/usr/bin/env bash
# Installs exactly the Debian 12 packages the build, tests, benchmarks and the
# demo need. Idempotent: when every package is present it does nothing (no
# apt-get update, no network). Needs root or sudo only when something is missing.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config ccache clang-format python3
  # libFuzzer targets (preset fuzz): Debian's clang and its sanitizer/fuzzer runtimes
  clang-14 libclang-rt-14-dev
  # libraries
  librdkafka-dev libthrift-dev thrift-compiler libboost-dev libhiredis-dev libluajit-5.1-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libgoogle-glog-dev libgflags-dev libgtest-dev libgmock-dev librocksdb-dev
  prometheus-cpp-dev libcli11-dev libyaml-cpp-dev libbenchmark-dev
  # servers and tools used by tests and the demo
  redis-server redis-tools kcat python3-grpcio python3-protobuf python3-yaml openssl
  # examples/ (Kafka consumer, gRPC client with stubs compiled at start), for /usr/bin/python3
  python3-kafka python3-grpc-tools
  # real Kafka and HBase for the `real` test tier (tools/services, jars via Maven)
  openjdk-17-jdk-headless maven
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "installed" ]] || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "setup-deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "setup-deps: need root or sudo to install" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The redis-server package may start a system service on 6379; our tests and
# demo start their own servers on free ports and never use it.
echo "setup-deps: done"
