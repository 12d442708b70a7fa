"""generate(), the C++ decode loop, on a tiny generated model: determinism,
agreement with llama_cpp, stop handling, streaming and validation."""

from __future__ import annotations

import math

import llama_cpp
import numpy as np
import pytest

import llama_simplex as ls
from llama_simplex.generation import context_address, model_address


def test_one_libllama_is_loaded(tiny_llm):
    # Our extension and llama_cpp must share one libllama: pointers cross between them.
    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if "libllama.so" in line}
    assert len(paths) == 1, paths


def test_greedy_matches_llama_cpp(tiny_llm, tiny_text):
    ours = ls.generate(tiny_llm, tiny_text, ls.Greedy(), max_tokens=20, seed=0)
    theirs = tiny_llm.create_completion(tiny_text, max_tokens=20, temperature=0.0)
    assert ours.text == theirs["choices"][0]["text"]
    assert len(ours.tokens) > 0


def test_generator_runs_on_the_llama_objects(tiny_llm, tiny_text):
    # The generator uses the Llama's own llama_context*/llama_model*.
    assert context_address(tiny_llm) and model_address(tiny_llm)
    gen = ls.generate(tiny_llm, tiny_text, ls.Softmax(), max_tokens=5, seed=1)
    assert gen.n_prompt_tokens == len(tiny_llm.tokenize(tiny_text.encode()))


def test_same_seed_same_tokens_and_seeds_differ(tiny_llm, tiny_text):
    runs = [ls.generate(tiny_llm, tiny_text, ls.TopK(k=8, temperature=1.0), max_tokens=30, seed=7,
                        stop=None).tokens for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]
    others = {tuple(ls.generate(tiny_llm, tiny_text, ls.TopK(k=8), max_tokens=30, seed=s).tokens) for s in range(8)}
    assert len(others) > 1


def test_stream_equals_text(tiny_llm, tiny_text):
    pieces = list(ls.generate(tiny_llm, tiny_text, ls.TopP(p=0.9), max_tokens=25, seed=3))
    whole = ls.generate(tiny_llm, tiny_text, ls.TopP(p=0.9), max_tokens=25, seed=3)
    assert "".join(pieces) == whole.text
    assert whole.finish_reason in ("stop", "length")


def test_max_tokens_and_length(tiny_llm, tiny_text):
    # Forbid EOS (id 2) by a min-p sampler? Simpler: count tokens bounded by max_tokens.
    gen = ls.generate(tiny_llm, tiny_text, ls.Softmax(), max_tokens=4, seed=5).wait()
    assert len(gen.tokens) <= 4
    if len(gen.tokens) == 4:
        assert gen.finish_reason == "length"
    zero = ls.generate(tiny_llm, tiny_text, ls.Softmax(), max_tokens=0, seed=5)
    assert zero.tokens == [] and zero.finish_reason == "length"


def test_stop_string_is_cut(tiny_llm, tiny_text):
    # Find a seed whose text contains a character, then stop on it.
    for seed in range(50):
        text = ls.generate(tiny_llm, tiny_text, ls.Softmax(), max_tokens=30, seed=seed).text
        if len(text) >= 4:
            stop = text[2:4]
            cut = ls.generate(tiny_llm, tiny_text, ls.Softmax(), max_tokens=30, seed=seed, stop=[stop])
            assert cut.text == text[: text.index(stop)]
            assert cut.finish_reason == "stop"
            streamed = "".join(ls.generate(tiny_llm, tiny_text, ls.Softmax(), max_tokens=30, seed=seed, stop=stop))
            assert streamed == cut.text
            return
    pytest.fail("no seed produced 4 characters")


def test_callback_sees_every_token_and_can_stop(tiny_llm, tiny_text):
    seen = []
    gen = ls.generate(tiny_llm, tiny_text, ls.Softmax(), max_tokens=12, seed=11,
                      callback=lambda tok, text: seen.append(tok))
    assert [t for t in seen if t >= 0] == gen.tokens
    early = []
    ls.generate(tiny_llm, tiny_text, ls.Softmax(), max_tokens=12, seed=11,
                callback=lambda tok, text: early.append(tok) or len(early) < 2)
    assert len(early) == 2


def test_first_token_follows_the_sampler_distribution(tiny_llm, tiny_text):
    """Empirical first-token frequencies under TopK(k=4) against q computed by
    the kernel from the model's logits; bound: 5 binomial standard deviations."""
    tiny_llm.reset()
    tokens = tiny_llm.tokenize(tiny_text.encode())
    tiny_llm.eval(tokens)
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(tiny_llm.ctx, -1),
                                   shape=(tiny_llm.n_vocab(),)).copy()
    q, support = ls.kernels.top_k(logits, k=4, temperature=1.0)
    n = 600
    counts = np.zeros_like(q, dtype=np.int64)
    for seed in range(n):
        first = ls.generate(tiny_llm, tokens, ls.TopK(k=4), max_tokens=1, seed=seed, add_special=False).tokens
        if first:
            counts[first[0]] += 1
        else:  # EOS drawn first
            counts[tiny_llm.token_eos()] += 1
    freq = counts / n
    sigma = np.sqrt(np.maximum(q * (1 - q), 1e-12) / n)
    assert np.all(counts[q == 0] == 0)
    assert np.all(np.abs(freq - q) <= 5 * sigma + 1e-9), (freq, q)


def test_prompt_token_ids_are_accepted(tiny_llm, tiny_text):
    ids = tiny_llm.tokenize(tiny_text.encode())
    assert ls.generate(tiny_llm, ids, ls.Greedy(), max_tokens=6).text == \
        ls.generate(tiny_llm, tiny_text, ls.Greedy(), max_tokens=6).text


@pytest.mark.parametrize("kwargs, exc, words", [
    ({"max_tokens": -1}, ValueError, "max_tokens"),
    ({"max_tokens": 1.5}, TypeError, "max_tokens"),
    ({"seed": -3}, ValueError, "seed"),
    ({"seed": 2**33}, ValueError, "seed"),
    ({"stop": [""]}, ValueError, "stop[0]"),
])
def test_generate_rejects_bad_arguments(tiny_llm, tiny_text, kwargs, exc, words):
    with pytest.raises(exc, match=words.replace("[", r"\[").replace("]", r"\]")):
        ls.generate(tiny_llm, tiny_text, ls.Greedy(), **kwargs)


def test_bad_prompts_raise_not_crash(tiny_llm):
    with pytest.raises(ValueError, match="prompt"):
        ls.generate(tiny_llm, [1] * 400, ls.Greedy(), max_tokens=1)  # longer than n_ctx = 256
    with pytest.raises(ValueError, match="prompt"):
        ls.generate(tiny_llm, [1, 99], ls.Greedy(), max_tokens=1)  # id outside the vocabulary
    with pytest.raises(ValueError, match="prompt"):
        ls.generate(tiny_llm, [], ls.Greedy())
    with pytest.raises(ValueError, match="tokenize"):
        ls.generate(tiny_llm, "ZZZ~~~", ls.Greedy())  # characters the tiny vocabulary lacks
    with pytest.raises(TypeError, match="sampler"):
        ls.generate(tiny_llm, "abc", "top-k")
    with pytest.raises(TypeError, match="llm"):
        ls.generate(42, "abc")


def test_generate_from_a_path(tiny_model_path, tiny_text):
    a = ls.generate(str(tiny_model_path), tiny_text, ls.Greedy(), max_tokens=5).wait()
    assert a.finish_reason in ("stop", "length")


def test_llama_cpp_still_works_after_our_generation(tiny_llm, tiny_text):
    ls.generate(tiny_llm, tiny_text, ls.Softmax(), max_tokens=10, seed=1).wait()
    a = tiny_llm.create_completion(tiny_text, max_tokens=10, temperature=0.0)["choices"][0]["text"]
    b = ls.generate(tiny_llm, tiny_text, ls.Greedy(), max_tokens=10).text
    assert a == b
