"""Tests for models/tiny_gguf.py: the generator itself and loading in llama.cpp."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
sys.path.insert(0, str(MODELS_DIR))

import tiny_gguf  # noqa: E402
from tiny_gguf import build_tiny_model, cached_tiny_model, tiny_vocab  # noqa: E402

# Strings made only of characters present in every vocabulary (n_vocab >= 8
# gives "▁abcd"); llama.cpp aborts on characters outside the vocabulary.
CONTEXTS = ["a", "ab", "dcba", "a b", "bad cab", "ccc", "d a d"]


@pytest.fixture(scope="module")
def llama_cpp():
    return pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """Build each (n_vocab, seed) model once per test module."""
    root = tmp_path_factory.mktemp("tiny")
    built: dict[tuple[int, int], Path] = {}

    def get(n_vocab: int = 16, seed: int = 0) -> Path:
        if (n_vocab, seed) not in built:
            built[n_vocab, seed] = build_tiny_model(root / f"v{n_vocab}-s{seed}.gguf",
                                                    n_vocab=n_vocab, seed=seed)
        return built[n_vocab, seed]

    return get


def _load(llama_cpp, path: Path, **kw):
    return llama_cpp.Llama(model_path=str(path), n_ctx=128, n_threads=1,
                           verbose=False, **kw)


def _last_logits(llama_cpp, llm) -> np.ndarray:
    """Logits after the last eval, read from llama.cpp itself: llm.scores is
    only filled when logits_all=True (llama-cpp-python 0.3.x)."""
    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float64)


def _next_logits(llama_cpp, llm, text: str) -> np.ndarray:
    """Logits for the token following BOS + ``text``."""
    llm.reset()
    llm.eval(llm.tokenize(text.encode()))
    return _last_logits(llama_cpp, llm)


def _entropy(logits: np.ndarray) -> float:
    z = logits - logits.max()
    p = np.exp(z) / np.exp(z).sum()
    return float(-(p * np.log(np.clip(p, 1e-300, None))).sum())


# --- generator only (no llama.cpp needed) -----------------------------------

@pytest.mark.parametrize("n_vocab", [4, 7, 65])
def test_rejects_out_of_range_vocab(tmp_path, n_vocab):
    with pytest.raises(ValueError, match=r"n_vocab.*8\.\.64"):
        build_tiny_model(tmp_path / "x.gguf", n_vocab=n_vocab)
    assert not (tmp_path / "x.gguf").exists()


def test_same_arguments_give_byte_identical_files(tmp_path):
    a = build_tiny_model(tmp_path / "a.gguf", n_vocab=16, seed=3)
    b = build_tiny_model(tmp_path / "b.gguf", n_vocab=16, seed=3)
    c = build_tiny_model(tmp_path / "c.gguf", n_vocab=16, seed=4)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_cached_model_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("LLAMA_SIMPLEX_CACHE", str(tmp_path / "cache"))
    p1 = cached_tiny_model(n_vocab=8, seed=1)
    mtime = p1.stat().st_mtime_ns
    p2 = cached_tiny_model(n_vocab=8, seed=1)
    assert p1 == p2 and p2.stat().st_mtime_ns == mtime
    assert p1.read_bytes() == build_tiny_model(tmp_path / "d.gguf", n_vocab=8, seed=1).read_bytes()
    assert cached_tiny_model(n_vocab=8, seed=1, logit_scale=1.0) != p1  # keyed by all params
    assert not list((tmp_path / "cache").glob("*.tmp"))
    with pytest.raises(TypeError):
        cached_tiny_model(n_vocab=8, bogus=1)


def test_cli(tmp_path):
    out = tmp_path / "cli.gguf"
    subprocess.run([sys.executable, str(MODELS_DIR / "tiny_gguf.py"), str(out),
                    "--n-vocab", "16", "--seed", "0"], check=True, capture_output=True)
    assert out.read_bytes() == build_tiny_model(tmp_path / "api.gguf").read_bytes()


# --- loading in llama.cpp ---------------------------------------------------

@pytest.mark.parametrize("n_vocab", [8, 16, 64])
def test_loads_with_expected_vocab(llama_cpp, model_path, n_vocab):
    llm = _load(llama_cpp, model_path(n_vocab))
    assert llm.n_vocab() == n_vocab
    assert (llm.token_bos(), llm.token_eos()) == (tiny_gguf.BOS_ID, tiny_gguf.EOS_ID)
    assert llm.n_ctx() >= 128  # llama.cpp pads n_ctx up (to 256 here)


def test_tokenize_detokenize_round_trip(llama_cpp, model_path):
    llm = _load(llama_cpp, model_path(16))
    vocab = tiny_vocab(16)
    assert llm.tokenize(b"ab") == [tiny_gguf.BOS_ID, vocab.index("a"), vocab.index("b")]
    assert llm.tokenize(b"ab", add_bos=False) == [vocab.index("a"), vocab.index("b")]
    for text in [b"ab", b"a b", b"bad cab"]:
        assert llm.detokenize(llm.tokenize(text)) == text
    # EOS is a real token with a finite logit, so sampling can end a generation.
    assert llm.detokenize([vocab.index("c"), tiny_gguf.EOS_ID]) == b"c"


@pytest.mark.parametrize("logits_all", [False, True])
def test_eval_gives_finite_logits(llama_cpp, model_path, logits_all):
    llm = _load(llama_cpp, model_path(16), logits_all=logits_all)
    tokens = llm.tokenize(b"ab")
    llm.eval(tokens)
    logits = _last_logits(llama_cpp, llm)
    assert logits.shape == (16,)
    if logits_all:  # the Python-side copy agrees with llama.cpp's buffer
        np.testing.assert_array_equal(llm.scores[len(tokens) - 1], logits)
    assert np.isfinite(logits).all()
    assert logits.std() > 0.1  # not degenerate


def test_outputs_deterministic_across_loads(llama_cpp, model_path):
    path = model_path(16, seed=2)
    runs = []
    for _ in range(2):
        llm = _load(llama_cpp, path)
        runs.append(np.stack([_next_logits(llama_cpp, llm, t) for t in CONTEXTS]))
        del llm
    np.testing.assert_array_equal(runs[0], runs[1])
    # ...and the context matters, so samplers see varied distributions.
    assert not np.allclose(runs[0][0], runs[0][1])


@pytest.mark.parametrize("n_vocab", [8, 16, 64])
@pytest.mark.parametrize("seed", range(5))
def test_next_token_entropy_is_useful(llama_cpp, model_path, n_vocab, seed):
    llm = _load(llama_cpp, model_path(n_vocab, seed))
    ratios = [_entropy(_next_logits(llama_cpp, llm, t)) / math.log(n_vocab) for t in CONTEXTS]
    # Neither near-uniform nor near one-hot, on average over contexts.
    assert 0.3 < float(np.mean(ratios)) < 0.9, ratios


def test_generation_can_end_with_eos(llama_cpp, model_path):
    llm = _load(llama_cpp, model_path(16))
    reasons = {llm.create_completion("ab", max_tokens=64, temperature=1.0, seed=s)
               ["choices"][0]["finish_reason"] for s in range(5)}
    assert "stop" in reasons  # EOS was sampled before max_tokens
