"""Shared fixtures: tiny generated GGUF models (built once per session into a
temporary cache) and llama_cpp.Llama objects on them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "models"))


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    from tiny_gguf import build_tiny_model
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny16.gguf", n_vocab=16, seed=0)


@pytest.fixture(scope="session")
def tiny_llm(tiny_model_path):
    import llama_cpp
    llm = llama_cpp.Llama(model_path=str(tiny_model_path), n_ctx=256, n_batch=64, verbose=False, seed=0)
    yield llm
    llm.close()


@pytest.fixture(scope="session")
def tiny_text():
    """Text the tiny model's character vocabulary can tokenize."""
    return "abc abc"


@pytest.fixture(scope="session")
def nan_model_path(tiny_model_path, tmp_path_factory) -> Path:
    """The tiny model with a NaN final norm: every logit it computes is NaN
    (a model no sampler can sample from; for the error paths)."""
    import shutil

    import gguf
    import numpy as np
    path = tmp_path_factory.mktemp("models") / "tiny16-nan.gguf"
    shutil.copy(tiny_model_path, path)
    reader = gguf.GGUFReader(path, "r+")
    next(t for t in reader.tensors if t.name == "output_norm.weight").data[:] = np.nan
    del reader  # flushes the memory map
    return path
