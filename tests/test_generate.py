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


# --- issue 10: a Chain draws, q is checked, Generation safety -------------------------------------

CHAIN = ls.Chain(ls.TopK(k=5), ls.MinP(p_min=0.05))


@pytest.mark.parametrize("sampler", [CHAIN, ls.Chain(ls.TopK(k=5)), ls.Chain(ls.Greedy())])
def test_a_chain_draws_its_token(tiny_llm, tiny_text, sampler):
    # main: "the sampler chain selected no token" (the chain got no draw).
    a = ls.generate(tiny_llm, tiny_text, sampler, max_tokens=8, seed=1).wait()
    assert a.finish_reason in ("stop", "length") and a.tokens == ls.generate(
        tiny_llm, tiny_text, sampler, max_tokens=8, seed=1).tokens


def test_a_chain_draws_like_its_last_member(tiny_llm, tiny_text):
    # Chain(TopK) draws from TopK's q with the call's seed: the same tokens as TopK alone.
    for seed in range(6):
        assert ls.generate(tiny_llm, tiny_text, ls.Chain(ls.TopK(k=6)), max_tokens=15, seed=seed).tokens == \
            ls.generate(tiny_llm, tiny_text, ls.TopK(k=6), max_tokens=15, seed=seed).tokens


def test_the_call_seed_decides_an_explicit_dist(tiny_llm, tiny_text):
    # main: Dist(seed=5) inside the chain fixed the draws whatever the call's seed.
    chain = ls.Chain(ls.TopK(k=8), ls.Dist(seed=5))
    texts = {ls.generate(tiny_llm, tiny_text, chain, max_tokens=12, seed=s).text for s in range(6)}
    assert len(texts) > 1
    assert ls.generate(tiny_llm, tiny_text, chain, max_tokens=12, seed=11).tokens == \
        ls.generate(tiny_llm, tiny_text, chain, max_tokens=12, seed=11).tokens
    # Without a call seed, the Dist's own seed draws.
    logits = np.linspace(0.0, 2.0, 16).astype(np.float32)
    picks = {int(ls.Chain(ls.TopK(k=8), ls.Dist(seed=5)).native().apply(logits)[3]) for _ in range(4)}
    assert len(picks) == 1 and picks.pop() >= 0


def test_chain_selects_only_with_a_seed_or_a_dist():
    logits = np.linspace(0.0, 2.0, 16).astype(np.float32)
    assert CHAIN.native().apply(logits)[3] == -1          # q only
    ids, _lg, p, selected, _ = CHAIN.native(seed=3).apply(logits)
    assert 0 <= selected < len(ids) and p[selected] > 0
    # A Dist before a decoder selected a token the decoder then moved: no stale selection.
    assert ls.Chain(ls.Dist(seed=1), ls.TopK(k=3)).native().apply(logits)[3] == -1


def _isolated(code: str) -> "subprocess.CompletedProcess[str]":
    """Runs code in a fresh interpreter: on main these cases abort or crash the process."""
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_create_completion_with_a_chain_does_not_abort(tiny_model_path, tiny_text):
    # main: GGML_ASSERT(cur_p.selected >= 0 ...) aborted the process.
    run = _isolated(f"""
import llama_cpp, llama_simplex as ls
llm = llama_cpp.Llama(model_path={str(tiny_model_path)!r}, n_ctx=256, verbose=False)
chain = ls.Chain(ls.TopK(k=5), ls.MinP(p_min=0.05))
out = ls.create_completion(llm, {tiny_text!r}, chain, seed=1, max_tokens=8)
print("ok", out["choices"][0]["finish_reason"])
""")
    assert run.returncode == 0 and run.stdout.startswith("ok"), run.stderr[-2000:]


def test_degenerate_q_is_an_error_never_junk(tiny_llm, tiny_text):
    """Extreme temperatures: either a valid distribution (the T -> 0 limit is
    greedy) or the q check's error; main sampled from NaN ("end it with a
    dist or greedy sampler") or returned NaN q."""
    greedy = ls.generate(tiny_llm, tiny_text, ls.Greedy(), max_tokens=4).tokens
    logits = np.array([3e4, 1.0, -2.0, 3e4 - 1e-3, 0.5], np.float32)
    for sampler in (ls.Sparsemax(temperature=1e-9), ls.Sparsemax(temperature=1e-38), ls.Softmax(temperature=1e-38),
                    ls.TopP(p=0.5, temperature=1e-40), ls.MinP(p_min=0.1, temperature=1e-42),
                    ls.TopK(k=3, temperature=1.5e-45)):
        try:
            tokens = ls.generate(tiny_llm, tiny_text, sampler, max_tokens=4, seed=0).tokens
        except RuntimeError as e:
            assert "q is not a distribution" in str(e) or "logit" in str(e), e
        else:
            assert tokens == greedy, sampler
        try:
            _ids, _lg, p, _sel, _ = sampler.native().apply(logits)
        except ValueError as e:
            assert "q is not a distribution" in str(e) or "logit" in str(e), e
        else:
            assert np.all(np.isfinite(p)) and abs(float(p.sum()) - 1.0) < 1e-5, (sampler, p)


def _steps(gen):
    return gen._steps()


def test_interleaved_generations_are_isolated(tiny_llm, tiny_text):
    # main: both streams decoded on one KV cache and were silently wrong.
    solo_a = ls.generate(tiny_llm, tiny_text, ls.TopK(k=8), max_tokens=30, seed=1).tokens
    solo_b = ls.generate(tiny_llm, "cab", ls.TopK(k=8), max_tokens=30, seed=2).tokens
    a = ls.generate(tiny_llm, tiny_text, ls.TopK(k=8), max_tokens=30, seed=1)
    b = ls.generate(tiny_llm, "cab", ls.TopK(k=8), max_tokens=30, seed=2)
    ia, ib = iter(a), iter(b)
    for _ in range(40):
        next(ia, None)
        next(ib, None)
    assert a.tokens == solo_a and b.tokens == solo_b
    assert len(solo_a) > 3 and len(solo_b) > 3


def test_llama_cpp_calls_between_steps_do_not_corrupt_a_generation(tiny_llm, tiny_text):
    solo = ls.generate(tiny_llm, tiny_text, ls.TopK(k=8), max_tokens=25, seed=4).tokens
    gen = ls.generate(tiny_llm, tiny_text, ls.TopK(k=8), max_tokens=25, seed=4)
    steps = iter(gen)
    next(steps)
    tiny_llm.create_completion("cab cab", max_tokens=5, temperature=0.0)
    next(steps, None)
    tiny_llm.reset()
    tiny_llm.eval(tiny_llm.tokenize(b"ba"))
    tiny_llm.reset()  # n_tokens is 0 again, but the cache holds other tokens
    assert gen.tokens == solo


def test_reading_a_generation_after_close_raises(tiny_model_path, tiny_text):
    # main: use after free (segfault) or a hang; isolated so that main's crash fails only this test.
    run = _isolated(f"""
import llama_cpp, llama_simplex as ls
llm = llama_cpp.Llama(model_path={str(tiny_model_path)!r}, n_ctx=256, verbose=False)
done = ls.generate(llm, {tiny_text!r}, ls.TopK(k=8), max_tokens=10, seed=1).wait()
live = ls.generate(llm, {tiny_text!r}, ls.TopK(k=8), max_tokens=10, seed=1)
next(iter(live))
text = done.text
llm.close()
assert done.text == text and done.finish_reason in ("stop", "length")
for read in (lambda: live.text, lambda: live.tokens, lambda: list(live)):
    try:
        read()
    except RuntimeError as e:
        assert "llm: the Llama was closed" in str(e), e
    else:
        raise AssertionError("no error")
print("ok")
""")
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


def test_closing_the_llama_in_a_callback_stops_cleanly(tiny_model_path, tiny_text):
    run = _isolated(f"""
import llama_cpp, llama_simplex as ls
llm = llama_cpp.Llama(model_path={str(tiny_model_path)!r}, n_ctx=256, verbose=False)
try:
    ls.generate(llm, {tiny_text!r}, ls.Greedy(), max_tokens=10, callback=lambda t, s: llm.close())
except RuntimeError as e:
    print("ok" if "closed" in str(e) else e)
""")
    assert run.returncode == 0 and run.stdout.strip() == "ok", (run.stdout, run.stderr[-2000:])


def test_a_callback_that_returns_false_stays_stopped(tiny_llm, tiny_text):
    # main: reading .text afterwards resumed the generation up to max_tokens.
    seen = []
    gen = ls.generate(tiny_llm, tiny_text, ls.Softmax(), max_tokens=12, seed=11,
                      callback=lambda tok, text: seen.append(tok) or len(seen) < 2)
    assert len(seen) == 2
    assert gen.tokens == seen and gen.finish_reason == "callback"
    assert list(gen) == [] and gen.tokens == seen
    assert gen.text == tiny_llm.detokenize(seen).decode()


@pytest.mark.parametrize("prompt", [b"abc", bytearray(b"abc"), memoryview(b"abc")])
def test_a_bytes_prompt_is_a_type_error(tiny_llm, prompt):
    # main: the bytes were read as token ids 97, 98, 99.
    with pytest.raises(TypeError, match=r"prompt must be a str or a sequence of token ids, got"):
        ls.generate(tiny_llm, prompt, ls.Greedy(), max_tokens=2)
    with pytest.raises(TypeError, match=r"prompt must be a str"):
        ls.sample_k(tiny_llm, prompt, 2, ls.Greedy(), max_tokens=2)


def test_threads_share_a_llama_safely(tiny_llm, tiny_text):
    """Generations and sample_k from several threads on one Llama: each step
    holds the Llama, so each result equals its single-threaded run."""
    import threading
    want = {s: ls.generate(tiny_llm, tiny_text, ls.TopK(k=8), max_tokens=20, seed=s).tokens for s in range(4)}
    want_k = ls.sample_k(tiny_llm, tiny_text, 3, CHAIN, max_tokens=6, seed=9).tokens
    got, errors = {}, []

    def work(s):
        try:
            gen = ls.generate(tiny_llm, tiny_text, ls.TopK(k=8), max_tokens=20, seed=s)
            "".join(gen)
            got[s] = gen.tokens
            got[("k", s)] = ls.sample_k(tiny_llm, tiny_text, 3, CHAIN, max_tokens=6, seed=9).tokens
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert all(got[s] == want[s] and got[("k", s)] == want_k for s in range(4))


def test_stop_ends_a_generation_for_good(tiny_llm, tiny_text):
    gen = ls.generate(tiny_llm, tiny_text, ls.TopK(k=8), max_tokens=30, seed=4)
    first = next(iter(gen))
    n = len(gen._generator.tokens)
    assert gen.stop().finish_reason == "stopped"
    assert len(gen.tokens) == n and gen.text.startswith(first) and list(gen) == []
