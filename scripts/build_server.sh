#!/usr/bin/env bash
# Builds llama.cpp's llama-server with our samplers compiled in.
#
# The llama.cpp source is the one the pinned llama-cpp-python ships (its
# sdist, from PyPI). patches/llama-server-sampler-registry.patch gives the
# server a sampler registry; cpp/server/register.cpp registers our samplers
# in it, and cpp/server/llama-server.cmake compiles it into the server with
# cpp/src (our own flags), against the llama.cpp being built, so the
# server has one libllama. ccache is used when it is installed.
#
# llama.cpp's RPC backend is built in too (-DGGML_RPC=ON), with its
# ggml-rpc-server, so `llama-server --rpc HOST:PORT` can put the model on
# another machine's devices (tests/test_llama_server_rpc.py runs it on loopback).
#
#   bash scripts/build_server.sh            # -> build/llama-server/bin/{llama-server,ggml-rpc-server}
#   LLAMA_SERVER_CMAKE_ARGS=-DGGML_CUDA=on bash scripts/build_server.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
LLAMA_CPP_VERSION=0.3.36
OUT=${LLAMA_SIMPLEX_SERVER_BUILD:-$ROOT/build/llama-server}
PATCH=$ROOT/patches/llama-server-sampler-registry.patch

mkdir -p "$OUT/sdist"
SDIST=$OUT/sdist/llama_cpp_python-$LLAMA_CPP_VERSION.tar.gz
if [ ! -f "$SDIST" ]; then
    # --no-build-isolation: only the archive is wanted, not its build requirements.
    "$PY" -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
        "llama-cpp-python==$LLAMA_CPP_VERSION" -d "$OUT/sdist"
fi

# A fresh, patched tree each time, so the patch always applies to pristine
# sources (ccache makes the unchanged files cheap to rebuild).
rm -rf "$OUT/src" "$OUT/unpack"
mkdir -p "$OUT/unpack"
tar -xzf "$SDIST" -C "$OUT/unpack" "llama_cpp_python-$LLAMA_CPP_VERSION/vendor/llama.cpp"
mv "$OUT/unpack/llama_cpp_python-$LLAMA_CPP_VERSION/vendor/llama.cpp" "$OUT/src"
rm -rf "$OUT/unpack"
patch -s -p1 -d "$OUT/src" < "$PATCH"

flags=""
if [ "$(uname -m)" = "x86_64" ]; then
    flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"  # see scripts/setup.sh
fi
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
export CCACHE_BASEDIR=$OUT
cmake -S "$OUT/src" -B "$OUT/build" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
    -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_OPENSSL=OFF -DGGML_CCACHE=ON \
    -DGGML_RPC=ON \
    -DLLAMA_SERVER_EXTRA_CMAKE="$ROOT/cpp/server/llama-server.cmake" \
    ${LLAMA_SERVER_CMAKE_ARGS:-} >"$OUT/configure.log"
cmake --build "$OUT/build" --target llama-server ggml-rpc-server -j "${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
mkdir -p "$OUT/bin"
for exe in llama-server ggml-rpc-server; do
    cp "$OUT/build/bin/$exe" "$OUT/bin/$exe"
    echo "built $OUT/bin/$exe"
done
