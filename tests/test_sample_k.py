"""sample_k(): k sequences on one shared KV cache, on the tiny model."""

from __future__ import annotations

import llama_cpp
import numpy as np
import pytest

import llama_simplex as ls
from llama_simplex import cli
from llama_simplex.multi_sample import Samples, sequence_seed


def test_seeded_and_sequences_differ(tiny_llm, tiny_text):
    a = ls.sample_k(tiny_llm, tiny_text, 6, ls.TopK(k=8), max_tokens=20, seed=3)
    b = ls.sample_k(tiny_llm, tiny_text, 6, ls.TopK(k=8), max_tokens=20, seed=3)
    assert a.tokens == b.tokens and a.texts == b.texts and a.logliks == b.logliks
    assert len(set(map(tuple, a.tokens))) > 1
    assert len(a) == 6 and all(f in ("stop", "length") for f in a.finish_reasons)
    assert all(len(t) <= 20 for t in a.tokens)


def _sequential_logliks(llm, prompt_ids, completion):
    """log p(completion | prompt) by plain one-sequence decoding with llama_cpp."""
    llm.reset()
    llm.eval(prompt_ids)
    total = 0.0
    for tok in completion:
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
        logits = logits.astype(np.float64)
        total += logits[tok] - (logits.max() + np.log(np.exp(logits - logits.max()).sum()))
        llm.eval([tok])
    return total


def test_logliks_equal_plain_decoding(tiny_llm, tiny_text):
    prompt_ids = tiny_llm.tokenize(tiny_text.encode())
    s = ls.sample_k(tiny_llm, prompt_ids, 4, ls.Softmax(), max_tokens=15, seed=9, add_special=False)
    for toks, ll in zip(s.tokens, s.logliks):
        assert abs(ll - _sequential_logliks(tiny_llm, prompt_ids, toks)) < 1e-3 * max(1, len(toks))


def test_first_tokens_follow_the_sampler(tiny_llm, tiny_text):
    """200 parallel sequences, one token each: the first tokens are draws from
    q (the kernel on the prompt's logits); bound: 5 binomial standard deviations."""
    prompt_ids = tiny_llm.tokenize(tiny_text.encode())
    tiny_llm.reset()
    tiny_llm.eval(prompt_ids)
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(tiny_llm.ctx, -1), shape=(tiny_llm.n_vocab(),)).copy()
    q, _ = ls.kernels.top_p(logits, p=0.9)
    n, counts = 0, np.zeros(q.size)
    for seed in range(3):
        s = ls.sample_k(tiny_llm, prompt_ids, 200, ls.TopP(p=0.9), max_tokens=1, seed=seed, add_special=False)
        for toks in s.tokens:
            counts[toks[0] if toks else tiny_llm.token_eos()] += 1
            n += 1
    freq = counts / n
    assert np.all(counts[q == 0] == 0)
    assert np.all(np.abs(freq - q) <= 5 * np.sqrt(q * (1 - q) / n) + 1e-12), (freq, q)


def test_stop_strings_and_limits(tiny_llm, tiny_text):
    free = ls.sample_k(tiny_llm, tiny_text, 5, ls.Softmax(), max_tokens=30, seed=1)
    stop = next(t[1:3] for t in free.texts if len(t) >= 3)
    cut = ls.sample_k(tiny_llm, tiny_text, 5, ls.Softmax(), max_tokens=30, seed=1, stop=stop)
    for before, after, fin in zip(free.texts, cut.texts, cut.finish_reasons):
        assert stop not in after
        if stop in before:
            assert after == before[: before.index(stop)] and fin == "stop"
    zero = ls.sample_k(tiny_llm, tiny_text, 3, ls.Softmax(), max_tokens=0, seed=1)
    assert zero.tokens == [[], [], []]


@pytest.mark.parametrize("kwargs, exc, words", [
    ({"k": 0}, ValueError, "k must be in"),
    ({"k": 257}, ValueError, "k must be in"),
    ({"k": 2.0}, TypeError, "k must be an integer"),
    ({"k": 2, "max_tokens": -1}, ValueError, "max_tokens"),
    ({"k": 2, "seed": -1}, ValueError, "seed"),
    ({"k": 2, "sampler": "top-k"}, TypeError, "sampler"),
])
def test_bad_arguments(tiny_llm, tiny_text, kwargs, exc, words):
    with pytest.raises(exc, match=words):
        ls.sample_k(tiny_llm, tiny_text, **kwargs)


def test_prompt_ids_are_checked(tiny_llm):
    with pytest.raises(ValueError, match="prompt"):
        ls.sample_k(tiny_llm, [1, 999], 2, max_tokens=2)
    with pytest.raises(ValueError, match="prompt"):
        ls.sample_k(tiny_llm, [], 2)


def test_majority_vote():
    s = Samples(texts=[" 4", "4 ", "5", "x", "5"], tokens=[[]] * 5, logliks=[-3.0, -2.0, -1.0, -9.0, -4.0],
                finish_reasons=["stop"] * 5, seed=0, sampler=ls.Softmax())
    assert s.majority_vote() == "5" or s.majority_vote() == "4"
    # "4" and "5" tie at 2 votes; "5" has the better completion (-1.0).
    assert s.majority_vote() == "5"
    digits = s.majority_vote(lambda t: t.strip() if t.strip().isdigit() else None)
    assert digits == "5"
    assert s.majority_vote(lambda t: None) is None
    assert s.best() == "5"


def test_sequence_seeds_are_distinct():
    seeds = {sequence_seed(7, i) for i in range(256)}
    assert len(seeds) == 256 and sequence_seed(7, 0) == 7


def test_cli_sample_k(tiny_model_path, capfd):
    args = ["sample-k", "--model", str(tiny_model_path), "-k", "3", "--sampler", "bok", "--preset", "paper-0.05",
            "--max-tokens", "8", "--seed", "2", "--answer-regex", "([a-c]+)", "abc"]
    assert cli.main(args) == 0
    out = capfd.readouterr().out
    assert out.count("== ") == 3 and "majority vote:" in out
    assert cli.main(args) == 0
    assert capfd.readouterr().out == out
    assert cli.main(["sample-k", "--model", str(tiny_model_path), "--sampler", "top-k", "--preset", "paper-0.05"]) == 2
    assert "--preset applies to --sampler bok, power or block-power" in capfd.readouterr().err


def test_sample_k_with_a_chain(tiny_llm, tiny_text):
    # main: "the sampler chain selected no token". Each sequence draws with its own seed,
    # exactly as the chain's last member alone does.
    chain = ls.Chain(ls.TopK(k=5), ls.MinP(p_min=0.05))
    a = ls.sample_k(tiny_llm, tiny_text, 4, chain, max_tokens=10, seed=3)
    assert a.tokens == ls.sample_k(tiny_llm, tiny_text, 4, chain, max_tokens=10, seed=3).tokens
    assert ls.sample_k(tiny_llm, tiny_text, 4, ls.Chain(ls.TopK(k=6)), max_tokens=10, seed=3).tokens == \
        ls.sample_k(tiny_llm, tiny_text, 4, ls.TopK(k=6), max_tokens=10, seed=3).tokens
    # An explicit Dist takes each sequence's seed, not its own: the sequences differ.
    d = ls.sample_k(tiny_llm, tiny_text, 6, ls.Chain(ls.TopK(k=8), ls.Dist(seed=5)), max_tokens=10, seed=3)
    assert len(set(map(tuple, d.tokens))) > 1


def test_samples_outlive_the_llama(tiny_model_path, tiny_text):
    llm = llama_cpp.Llama(model_path=str(tiny_model_path), n_ctx=256, verbose=False)
    s = ls.sample_k(llm, tiny_text, 3, ls.TopK(k=8), max_tokens=6, seed=1)
    llm.close()
    assert len(s.texts) == 3 and s.best() in s.texts  # plain data
    with pytest.raises(ValueError, match="llm: .*closed"):
        ls.sample_k(llm, tiny_text, 3, ls.TopK(k=8), max_tokens=6, seed=1)
