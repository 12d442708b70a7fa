"""What scripts/gpu_check.sh relies on, checked without a GPU: the models it
writes (models/shaped_gguf.py: real shapes, any text tokenizes, llama.cpp loads
and decodes them), the bundle scripts/make_gpu_bundle.sh makes (under 64 MiB,
without what the build does not read) and the check's refusal of a missing
bundle. The full CPU run (GPU_CHECK_CUDA=0) builds llama-cpp-python and takes
minutes: README, "Measuring on an NVIDIA GPU machine"."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from shaped_gguf import SHAPES, build_shaped_model, n_params, shaped_vocab

ROOT = Path(__file__).resolve().parents[1]
SDIST = ROOT / "build" / "llama-server" / "sdist" / "llama_cpp_python-0.3.36.tar.gz"
SMALL = dict(n_vocab=1024, n_embd=64, n_layer=2, n_head=4, n_head_kv=1, head_dim=32, n_ff=96)


def test_shapes_are_the_models_sizes():
    # Gemma 3 270M: 268M parameters, 170M of them the 262,144 x 640 embedding;
    # Gemma 3 1B: 1.0B (without Gemma's q/k norms, a few thousand more)
    assert round(n_params(**SHAPES["gemma3-270m"]) / 1e6) == 268
    assert round(n_params(**SHAPES["gemma3-1b"]) / 1e8) == 10
    assert {s["n_vocab"] for s in SHAPES.values()} == {262144}


def test_vocabulary_is_unique_and_refuses_too_small():
    vocab = shaped_vocab(4096)
    assert len(vocab) == len(set(vocab)) == 4096
    with pytest.raises(ValueError, match="n_vocab must be >= "):
        shaped_vocab(100)


def test_a_shaped_model_loads_tokenizes_anything_and_decodes(tmp_path):
    import llama_cpp
    import llama_simplex as ls
    path = build_shaped_model(tmp_path / "m.gguf", seed=1, **SMALL)
    assert path.read_bytes() == build_shaped_model(tmp_path / "again.gguf", seed=1, **SMALL).read_bytes()
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, verbose=False)
    try:
        assert llm.n_vocab() == SMALL["n_vocab"] and llm.n_embd() == SMALL["n_embd"]
        text = "Write a story.\nÜber 42 €!"  # newline and non-ASCII by byte fallback
        tokens = llm.tokenize(text.encode())
        assert llm.detokenize(tokens).decode() == text
        out = ls.generate(llm, text, ls.Softmax(temperature=1.0), max_tokens=6, seed=0)
        assert len(out.tokens) == 6
    finally:
        llm.close()


def test_shaped_model_refuses_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match="n_head must be a multiple of n_head_kv"):
        build_shaped_model(tmp_path / "m.gguf", **dict(SMALL, n_head_kv=3))
    with pytest.raises(ValueError, match="n_layer must be a positive integer"):
        build_shaped_model(tmp_path / "m.gguf", **dict(SMALL, n_layer=0))


@pytest.mark.skipif(not SDIST.exists(), reason="no sdist: bash scripts/build_server.sh downloads it")
def test_the_bundle_is_under_64_mib_and_trimmed(tmp_path):
    out = tmp_path / "bundle"
    run = subprocess.run(["bash", str(ROOT / "scripts" / "make_gpu_bundle.sh"), str(out)],
                         env=dict(os.environ, GPU_BUNDLE_WHEELS="0"), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "limit 64 MiB" in run.stdout
    assert sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) <= 64 * 2**20
    with tarfile.open(out / "llama_cpp_python-0.3.36-trimmed.tar.gz") as tar:
        names = tar.getnames()
    lc = "llama_cpp_python-0.3.36/vendor/llama.cpp/"
    for kept in ("CMakeLists.txt", "src/llama.cpp", "ggml/src/ggml-cuda/CMakeLists.txt",
                 "ggml/src/ggml-cpu/CMakeLists.txt", "ggml/src/ggml-rpc/ggml-rpc.cpp", "common/CMakeLists.txt"):
        assert lc + kept in names, kept
    for dropped in ("tests/", "models/", "docs/", "examples/", "tools/server/", "ggml/src/ggml-vulkan/"):
        assert not any(n.startswith(lc + dropped) for n in names), dropped
    assert "llama_cpp_python-0.3.36/llama_cpp/llama_cpp.py" in names
    with tarfile.open(out / "llama-simplex.tar.gz") as tar:
        assert "llama-simplex/scripts/gpu_check.sh" in tar.getnames()
    assert (out / "gpu_check.sh").read_bytes() == (ROOT / "scripts" / "gpu_check.sh").read_bytes()


def test_gpu_check_refuses_a_missing_bundle(tmp_path):
    run = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(tmp_path / "out")],
                         env=dict(os.environ, GPU_CHECK_BUNDLE=str(tmp_path / "nothing")),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "llama_cpp_python-0.3.36-trimmed.tar.gz is missing" in run.stderr
    assert not (tmp_path / "out").exists()


def test_gpu_check_starts_no_step_past_its_budget(tmp_path):
    """The 10-minute bound: a step that would start with less than its minimum
    time left is skipped and recorded, and without the builds the check stops."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    for name in ("llama_cpp_python-0.3.36-trimmed.tar.gz", "llama-simplex.tar.gz"):
        (bundle / name).write_bytes(b"")
    run = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(tmp_path / "out")],
                         env=dict(os.environ, GPU_CHECK_BUNDLE=str(bundle), GPU_CHECK_BUDGET_S="0",
                                  GPU_CHECK_WORK=str(tmp_path / "work")),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    steps = (tmp_path / "out" / "steps.tsv").read_text().splitlines()
    assert steps[0] == "step\tstatus\tseconds"
    assert steps[1].startswith("setup\tskipped (") and len(steps) == 2
    assert (tmp_path / "out" / "env.txt").read_text().startswith("date: ")
