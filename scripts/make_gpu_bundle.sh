#!/usr/bin/env bash
# Makes the files scripts/gpu_check.sh needs on an NVIDIA GPU machine with no
# network (at most 64 MiB in all; the size is printed):
#
#   llama_cpp_python-0.3.36-trimmed.tar.gz  the pinned llama-cpp-python sdist without
#       what a CUDA/CPU build of its library does not read: llama.cpp's tests,
#       models, docs, examples, tools but mtmd, other ggml backends, web UI, ...
#   llama-simplex.tar.gz   this repository at HEAD (git archive: commit first)
#   wheels/                pure/binary wheels for Python $GPU_BUNDLE_PYTHON (default
#       3.12) of what gpu_check.sh imports and the GPU machine may lack (numpy,
#       gguf and its imports, jinja2, diskcache, typing-extensions, pytest,
#       hypothesis); pip installs only those not already there
#   gpu_check.sh           the entry point: bash gpu_check.sh [OUT]
#
#   bash scripts/make_gpu_bundle.sh [DIR]    # default build/gpu-bundle
#
# The sdist is the one scripts/build_server.sh keeps (build/llama-server/sdist),
# else pip downloads it (from its cache when it has it). The wheels come from
# the package index through pip download; GPU_BUNDLE_WHEELS=0 leaves them out
# (when the GPU machine has them already). GPU_BUNDLE_EXTRA_WHEELS adds more
# requirements (e.g. scipy, 35 MB: the bundle is refused beyond 64 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
V=0.3.36
DIR=$(realpath -m "${1:-$ROOT/build/gpu-bundle}")
LIMIT=$((64 * 1024 * 1024))
WORK=$DIR.work
rm -rf "$DIR" "$WORK"
mkdir -p "$DIR" "$WORK"

SDIST=${LLAMA_SIMPLEX_SERVER_BUILD:-$ROOT/build/llama-server}/sdist/llama_cpp_python-$V.tar.gz
if [ ! -f "$SDIST" ]; then
    "$PY" -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
        "llama-cpp-python==$V" -d "$WORK"
    SDIST=$WORK/llama_cpp_python-$V.tar.gz
fi

# --- the trimmed llama-cpp-python source ------------------------------------
tar -xzf "$SDIST" -C "$WORK"
SRC=$WORK/llama_cpp_python-$V
# llama-cpp-python: its package, build files and README (the metadata reads it).
find "$SRC" -mindepth 1 -maxdepth 1 \
    ! -name llama_cpp ! -name vendor ! -name CMakeLists.txt ! -name pyproject.toml \
    ! -name README.md ! -name LICENSE.md ! -name PKG-INFO -exec rm -rf {} +
# llama.cpp: what its CMake reads when built as a subproject (no tests, tools,
# examples: LLAMA_STANDALONE is off), plus tools/mtmd for llama-cpp-python's
# optional LLAVA_BUILD.
LC=$SRC/vendor/llama.cpp
find "$LC" -mindepth 1 -maxdepth 1 \
    ! -name CMakeLists.txt ! -name LICENSE ! -name cmake ! -name common ! -name ggml \
    ! -name include ! -name licenses ! -name src ! -name vendor ! -name tools -exec rm -rf {} +
find "$LC/tools" -mindepth 1 -maxdepth 1 ! -name mtmd -exec rm -rf {} +
# ggml: the CPU, CUDA, RPC and BLAS backends only (each backend's directory is
# read only when its GGML_<NAME> option is on).
find "$LC/ggml/src" -mindepth 1 -maxdepth 1 -type d -name 'ggml-*' \
    ! -name ggml-cpu ! -name ggml-cuda ! -name ggml-rpc ! -name ggml-blas -exec rm -rf {} +
# The CPU backend's code for CPUs other than x86-64 and arm64 (GPU hosts).
find "$LC/ggml/src/ggml-cpu/arch" -mindepth 1 -maxdepth 1 ! -name x86 ! -name arm -exec rm -rf {} +
rm -rf "$LC/ggml/src/ggml-cpu/spacemit"
tar -czf "$DIR/llama_cpp_python-$V-trimmed.tar.gz" -C "$WORK" "llama_cpp_python-$V"

# --- this repository ------------------------------------------------------------
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "note: uncommitted changes are not in the bundle (git archive HEAD)" >&2
fi
git archive --format=tar.gz --prefix=llama-simplex/ -o "$DIR/llama-simplex.tar.gz" HEAD
git rev-parse HEAD >"$DIR/COMMIT"
cp scripts/gpu_check.sh "$DIR/gpu_check.sh"

# --- wheels -----------------------------------------------------------------------
if [ "${GPU_BUNDLE_WHEELS:-1}" = 1 ]; then
    GPU_PY=${GPU_BUNDLE_PYTHON:-3.12}
    # shellcheck disable=SC2086  # GPU_BUNDLE_EXTRA_WHEELS is a list of requirements
    "$PY" -m pip download --quiet --only-binary :all: --python-version "$GPU_PY" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$DIR/wheels" "numpy>=1.24" "gguf==0.19.0" "jinja2>=2.11" "diskcache>=5.6" "typing-extensions>=4.5" \
        "pytest>=7" "hypothesis>=6" ${GPU_BUNDLE_EXTRA_WHEELS:-}
fi
rm -rf "$WORK"

size=$(find "$DIR" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
du -ab "$DIR" --max-depth=1 | sort -n
printf 'bundle %s: %d bytes (%.1f MiB; limit 64 MiB)\n' "$DIR" "$size" "$(echo "$size / 1048576" | bc -l)"
if [ "$size" -gt "$LIMIT" ]; then
    echo "error: the bundle is larger than 64 MiB" >&2
    exit 1
fi
