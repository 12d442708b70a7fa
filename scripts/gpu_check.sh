#!/usr/bin/env bash
# Issue 13's figures on an NVIDIA GPU machine with no network, in one command,
# from the bundle scripts/make_gpu_bundle.sh makes (at most 64 MiB):
#
#   bash gpu_check.sh [OUT]          # in the bundle folder; OUT default ./gpu-check-out
#   GPU_CHECK_BUNDLE=DIR bash scripts/gpu_check.sh [OUT]   # from a checkout
#
# It needs Python 3.12 (any 3.9+), CMake, ninja, pybind11, scikit-build-core and,
# for the GPU, the CUDA compiler; pip never reaches an index (PIP_NO_INDEX=1).
# Steps, each logged to OUT/logs/<step>.log and timed in OUT/steps.tsv:
#   1. a venv (--system-site-packages) with the bundle's wheels it lacks;
#   2. llama-cpp-python 0.3.36 from the trimmed source, CUDA architecture 90
#      (-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90), then llama-simplex, both
#      `pip install --no-index --no-build-isolation`;
#   3. models written here with gguf (models/shaped_gguf.py): Gemma 3 270M's
#      shapes (vocabulary 262,144) and Gemma 3 1B's, random float16 weights;
#   4. tests/test_backend_sampling.py (in-graph vs CPU path) on the 270M shape
#      (LLAMA_SIMPLEX_MODEL), if the checkout has it;
#   5. `llama-simplex bench --parts generation` and `--parts power` on the 270M
#      shape, then `--parts generation` on the 1B shape, into OUT/bench/<shape>/.
# OUT/summary.md collects the steps and the bench reports (for docs/bench/gpu/).
# The whole run stops starting steps when GPU_CHECK_BUDGET_S (default 570 s)
# is spent, so it ends within 10 minutes including the build.
#
# Variables: GPU_CHECK_CUDA=0 builds for the CPU (to try the script anywhere);
# GPU_CHECK_CUDA_ARCH (90); GPU_CHECK_MODELS ("gemma3-270m gemma3-1b");
# GPU_CHECK_QUICK (1: bench --quick, 0: never, auto: when under 300 s are left
# after the builds); GPU_CHECK_CMAKE_ARGS (more CMake options for
# llama-cpp-python's build); GPU_CHECK_WORK (build folder, default
# $TMPDIR/llama-simplex-gpu-check; models take 2.6 GB); CMAKE_BUILD_PARALLEL_LEVEL
# (default nproc); PYTHON (default python3: the version the bundle's wheels are
# for). ccache is used when installed.
set -uo pipefail
T0=$(date +%s)
HERE=$(cd "$(dirname "$0")" && pwd)
if [ -f "$HERE/llama-simplex.tar.gz" ]; then
    BUNDLE=${GPU_CHECK_BUNDLE:-$HERE}
else
    BUNDLE=${GPU_CHECK_BUNDLE:-$HERE/../build/gpu-bundle}
fi
V=0.3.36
OUT=$(realpath -m "${1:-$PWD/gpu-check-out}")
WORK=$(realpath -m "${GPU_CHECK_WORK:-${TMPDIR:-/tmp}/llama-simplex-gpu-check}")
CUDA=${GPU_CHECK_CUDA:-1}
BUDGET=${GPU_CHECK_BUDGET_S:-570}
MODELS=${GPU_CHECK_MODELS:-gemma3-270m gemma3-1b}
QUICK=""
[ "${GPU_CHECK_QUICK:-auto}" = 1 ] && QUICK=--quick
PY=${PYTHON:-python3}
JOBS=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
export PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1

for f in "llama_cpp_python-$V-trimmed.tar.gz" llama-simplex.tar.gz; do
    if [ ! -f "$BUNDLE/$f" ]; then
        echo "error: $BUNDLE/$f is missing: make the bundle with scripts/make_gpu_bundle.sh (or set GPU_CHECK_BUNDLE)" >&2
        exit 2
    fi
done
rm -rf "$OUT"
mkdir -p "$OUT/logs" "$WORK"
printf 'step\tstatus\tseconds\n' >"$OUT/steps.tsv"
FAILED=0

left() { echo $((BUDGET - ($(date +%s) - T0))); }

# step NAME MIN_S CAP_S CMD...: runs CMD (a shell function or program) with a
# timeout of min(CAP_S, time left), if at least MIN_S seconds are left; its
# output goes to logs/NAME.log. Returns CMD's status (skipped: 3). The caps
# are for the default budget of 570 s and grow with a larger one (a CPU run).
step() {
    local name=$1 min=$2 cap=$3 limit status t
    shift 3
    [ "$BUDGET" -gt 570 ] && cap=$((cap * BUDGET / 570))
    limit=$(($(left) - 10))  # room for timeout's --kill-after
    if [ "$limit" -lt "$min" ]; then
        printf '%s\tskipped (%ss left)\t0\n' "$name" "$limit" >>"$OUT/steps.tsv"
        echo "== $name: skipped, ${limit}s of the budget left"
        return 3
    fi
    [ "$limit" -gt "$cap" ] && limit=$cap
    echo "== $name (at most ${limit}s)"
    t=$(date +%s)
    # the steps are shell functions (exported below): timeout runs them in bash
    timeout --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@" >"$OUT/logs/$name.log" 2>&1
    status=$?
    t=$(($(date +%s) - t))
    if [ $status = 0 ]; then
        printf '%s\tok\t%s\n' "$name" "$t" >>"$OUT/steps.tsv"
    else
        [ $status = 124 ] && echo "timed out after ${limit}s" >>"$OUT/logs/$name.log"
        printf '%s\tfailed (exit %s)\t%s\n' "$name" "$status" "$t" >>"$OUT/steps.tsv"
        echo "   failed (exit $status): tail of logs/$name.log:"
        tail -n 15 "$OUT/logs/$name.log" | cut -c1-300 | sed "s/^/   | /"
        FAILED=1
    fi
    return $status
}

{
    echo "date: $(date -u +%FT%TZ)"
    echo "host: $(uname -srm), $(nproc) cores"
    echo "python: $("$PY" --version 2>&1)"
    echo "cmake: $(cmake --version 2>/dev/null | head -1)"
    echo "ninja: $(ninja --version 2>/dev/null)"
    echo "nvcc: $(nvcc --version 2>/dev/null | tail -1)"
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>/dev/null
    echo "GPU_CHECK_CUDA=$CUDA GPU_CHECK_CUDA_ARCH=${GPU_CHECK_CUDA_ARCH:-90} models: $MODELS quick: ${GPU_CHECK_QUICK:-auto}"
    [ -f "$BUNDLE/COMMIT" ] && echo "llama-simplex commit: $(cat "$BUNDLE/COMMIT")"
} >"$OUT/env.txt"
cat "$OUT/env.txt"

VENV=$WORK/venv
VPY=$VENV/bin/python
SRC=$WORK/src/llama-simplex

setup_venv() {
    rm -rf "$VENV" "$WORK/src"
    # Without ensurepip (Debian's python3 without python3-venv) the venv uses
    # the system's pip, which installs into the venv it runs in.
    "$PY" -m venv --system-site-packages "$VENV" \
        || { rm -rf "$VENV" && "$PY" -m venv --system-site-packages --without-pip "$VENV"; } || return 1
    mkdir -p "$WORK/src"
    tar -xzf "$BUNDLE/llama_cpp_python-$V-trimmed.tar.gz" -C "$WORK/src" || return 1
    tar -xzf "$BUNDLE/llama-simplex.tar.gz" -C "$WORK/src" || return 1
    local links=()
    [ -d "$BUNDLE/wheels" ] && links=(--find-links "$BUNDLE/wheels")
    # Only what is missing is installed; the rest is the system's.
    "$VPY" -m pip install --no-index "${links[@]}" "numpy>=1.24" "gguf==0.19.0" "jinja2>=2.11" \
        "diskcache>=5.6" "typing-extensions>=4.5" "pytest>=7" "hypothesis>=6"
}

LAUNCHER=""
if command -v ccache >/dev/null; then
    export CCACHE_BASEDIR=$WORK
    LAUNCHER=ccache
fi

build_llama_cpp() {
    local flags="" args
    if [ "$(uname -m)" = x86_64 ]; then
        flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"  # see scripts/setup.sh
    fi
    args="-DCMAKE_C_FLAGS='$flags' -DCMAKE_CXX_FLAGS='$flags' -DLLAVA_BUILD=OFF -DLLAMA_OPENSSL=OFF"
    if [ -n "$LAUNCHER" ]; then
        args="$args -DCMAKE_C_COMPILER_LAUNCHER=$LAUNCHER -DCMAKE_CXX_COMPILER_LAUNCHER=$LAUNCHER"
        args="$args -DCMAKE_CUDA_COMPILER_LAUNCHER=$LAUNCHER"
    fi
    if [ "$CUDA" = 1 ]; then
        # One architecture, and flash-attention kernels for the f16 KV cache
        # only (what these models use): the CUDA build fits the time budget.
        args="$args -DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=${GPU_CHECK_CUDA_ARCH:-90}"
        args="$args -DGGML_CUDA_FA_QUANTS=f16-f16 -DGGML_CUDA_NCCL=OFF"
    fi
    args="$args ${GPU_CHECK_CMAKE_ARGS:-}"
    echo "CMAKE_ARGS=$args"
    CMAKE_ARGS="$args" CMAKE_BUILD_PARALLEL_LEVEL=$JOBS "$VPY" -m pip install -v --no-index --no-build-isolation \
        --no-deps -Cbuild-dir="$WORK/build/llama_cpp" "$WORK/src/llama_cpp_python-$V" || return 1
    "$VPY" -c "import llama_cpp; print('llama_cpp', llama_cpp.__version__, llama_cpp.__file__); \
print('gpu offload:', llama_cpp.llama_supports_gpu_offload())"
    if [ "$CUDA" = 1 ]; then
        "$VPY" -c "import llama_cpp, sys; sys.exit(not llama_cpp.llama_supports_gpu_offload())" \
            || { echo "error: this llama-cpp-python cannot offload to the GPU"; return 1; }
    fi
}

build_simplex() {
    local launch=()
    [ -n "$LAUNCHER" ] && launch=(-Ccmake.define.CMAKE_CXX_COMPILER_LAUNCHER="$LAUNCHER")
    CMAKE_BUILD_PARALLEL_LEVEL=$JOBS "$VPY" -m pip install -v --no-index --no-build-isolation --no-deps \
        -Cbuild-dir="$WORK/build/llama_simplex" "${launch[@]}" "$SRC" || return 1
    cd "$WORK" && "$VPY" -c "import llama_simplex as ls; print('llama_simplex', ls.__file__)"
}

write_model() {  # write_model SHAPE
    mkdir -p "$WORK/models"
    "$VPY" "$SRC/models/shaped_gguf.py" "$WORK/models/$1.gguf" --shape "$1"
}

in_graph_tests() {
    cd "$SRC/tests" || return 1
    LLAMA_SIMPLEX_MODEL=$WORK/models/gemma3-270m.gguf "$VPY" -m pytest -q -rs -p no:cacheprovider \
        --junitxml="$OUT/tests/junit.xml" test_backend_sampling.py
}

bench() {  # bench SHAPE PART
    cd "$WORK" || return 1
    "$VENV/bin/llama-simplex" bench --parts "$2" --model "$WORK/models/$1.gguf" \
        --out "$OUT/bench/$1-$2" $QUICK && cat "$OUT/bench/$1-$2/report.md"
}
export BUNDLE V OUT WORK CUDA QUICK PY JOBS VENV VPY SRC LAUNCHER
export -f setup_venv build_llama_cpp build_simplex write_model in_graph_tests bench

step setup 30 120 setup_venv || exit 1
step build-llama-cpp-python 60 480 build_llama_cpp || exit 1
step build-llama-simplex 30 240 build_simplex || exit 1
# GPU_CHECK_QUICK=auto (the default): full benchmarks when at least 300 s of the
# budget are left after the builds, else --quick (fewer repetitions), so that
# every figure still comes out.
if [ "${GPU_CHECK_QUICK:-auto}" = auto ] && [ "$(left)" -lt 300 ]; then
    QUICK=--quick
    echo "   $(left)s left after the builds: the benchmarks run with --quick"
fi
echo "bench: ${QUICK:-full}" >>"$OUT/env.txt"
# The 270M shape first and whole (tests, generation, power), then the 1B shape,
# so that a short budget drops the 1B figures rather than the 270M ones.
for shape in $MODELS; do
    step "model-$shape" 20 120 write_model "$shape" || continue
    if [ "$shape" = gemma3-270m ]; then
        if [ -f "$SRC/tests/test_backend_sampling.py" ]; then
            mkdir -p "$OUT/tests"
            step tests-in-graph 30 150 in_graph_tests
        else
            printf 'tests-in-graph\tskipped (no tests/test_backend_sampling.py in this checkout)\t0\n' >>"$OUT/steps.tsv"
            echo "== tests-in-graph: skipped, tests/test_backend_sampling.py is not in this checkout"
        fi
    fi
    step "bench-$shape-generation" 30 200 bench "$shape" generation
    if [ "$shape" = gemma3-270m ]; then
        step "bench-$shape-power" 30 200 bench "$shape" power
    fi
done

{
    echo "# scripts/gpu_check.sh ($(( $(date +%s) - T0 )) s)"
    echo
    echo '```'
    cat "$OUT/env.txt"
    echo '```'
    echo
    echo "| step | status | seconds |"
    echo "|---|---|---|"
    tail -n +2 "$OUT/steps.tsv" | awk -F'\t' '{print "| " $1 " | " $2 " | " $3 " |"}'
    for report in "$OUT"/bench/*/report.md; do
        [ -f "$report" ] || continue
        echo
        echo "## $(basename "$(dirname "$report")") ($(head -1 "$report" | sed 's/^# //'))"
        echo
        sed '1,2d' "$report"
    done
} >"$OUT/summary.md"
echo "wrote $OUT/summary.md ($(( $(date +%s) - T0 )) s)"
exit $FAILED
