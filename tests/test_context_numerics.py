"""Every context llama_simplex makes on a user's model (rollout contexts,
in-graph sampling contexts, chain members' contexts) computes the logits the
user's own context computes: the numerics of llm.context_params (flash
attention, KV cache types, RoPE/YaRN, offloading; rollout.h ContextNumerics)
are carried over. llama.cpp's default flash attention is AUTO (on, on a CPU)
and llama_cpp.Llama's is off; on Gemma 3 270M the two next-token laws for the
prompt below are a TV of 0.105 apart, so before the fix every power sampler's
p (and SMC at alpha = 1, plain sampling) and in-graph generation differed
from the user's plain sampling by that much."""

from __future__ import annotations

import ctypes

import llama_cpp
import numpy as np
import pytest

import llama_simplex as ls
from llama_simplex import _core
from llama_simplex.handles import context_params_address, rollout_context

PROMPT = b"Q: A farmer has 17 sheep. All but 9 run away. How many are left?\nA:"


def last_logits(ctx, n_vocab: int) -> np.ndarray:
    ptr = llama_cpp.llama_get_logits_ith(ctypes.c_void_p(ctx), -1)
    return np.ctypeslib.as_array(ptr, shape=(n_vocab,)).astype(np.float64).copy()


def user_logits(llm: llama_cpp.Llama, tokens, split_last: bool = False) -> np.ndarray:
    """The next-token logits of llm's own context after `tokens`: one prefill,
    or (split_last) the last token decoded alone as in-graph sample_k decodes
    it (another batch layout: on Gemma with flash attention off, log p moves
    by 0.02 with it)."""
    llm.reset()
    if split_last:
        llm.eval(tokens[:-1])
        llm.eval(tokens[-1:])
    else:
        llm.eval(tokens)
    return last_logits(ctypes.cast(llm.ctx, ctypes.c_void_p).value, llm.n_vocab())


def log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max()
    return x - m - np.log(np.exp(x - m).sum())


@pytest.fixture(scope="module", params=[False, True], ids=["fa_off", "fa_on"])
def gemma(request):
    llm = llama_cpp.Llama(model_path=str(ls.resolve_model(None)), n_ctx=512, flash_attn=request.param,
                          verbose=False)
    yield llm
    llm.close()


TINY_KWARGS = {"fa_off": dict(flash_attn=False), "fa_on": dict(flash_attn=True),
               "f32_cache": dict(flash_attn=False, type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)}


@pytest.fixture(scope="module", params=list(TINY_KWARGS))
def tiny(request, tiny_model_path):
    llm = llama_cpp.Llama(model_path=str(tiny_model_path), n_ctx=256, n_batch=64, verbose=False, seed=0,
                          **TINY_KWARGS[request.param])
    yield llm
    llm.close()


def assert_rollout_logits_are_the_users(llm, tokens):
    expect = user_logits(llm, tokens)
    ctx = rollout_context(llm, 256, 2)
    _core.rollout_prefill(ctx, tokens)
    got = last_logits(ctx.address, llm.n_vocab())
    # The same kernels on the same prefill: bit for bit (llama.cpp's default
    # flash attention gave max |dlogit| 2.28 on Gemma with flash_attn=False).
    assert np.array_equal(got, expect), np.abs(got - expect).max()


def test_rollout_context_computes_the_users_logits_on_gemma(gemma):
    assert_rollout_logits_are_the_users(gemma, gemma.tokenize(PROMPT))


def test_rollout_context_computes_the_users_logits_on_the_tiny_model(tiny, tiny_text):
    assert_rollout_logits_are_the_users(tiny, tiny.tokenize(tiny_text.encode()))


def test_in_graph_first_token_probs_are_the_cpu_softmax_of_the_users_logits(gemma):
    """generate(backend_sampling=True) samples in a context of its own: its
    first step's in-graph probabilities are softmax of llm's logits (float32
    vs float64 softmax apart; before the fix a TV of 0.105 with fa off)."""
    tokens = gemma.tokenize(PROMPT)
    p = np.exp(log_softmax(user_logits(gemma, tokens)))
    gen = ls.generate(gemma, tokens, ls.Softmax(1.0), max_tokens=1, seed=3, backend_sampling=True)
    assert len(gen.tokens) == 1
    ctx = ctypes.c_void_p(gen._generator.context_address)
    assert gen._generator.context_address != ctypes.cast(gemma.ctx, ctypes.c_void_p).value  # its own context
    n = llama_cpp.llama_get_sampled_probs_count_ith(ctx, -1)
    assert n == gemma.n_vocab()
    q = np.ctypeslib.as_array(llama_cpp.llama_get_sampled_probs_ith(ctx, -1), shape=(n,)).astype(np.float64)
    assert 0.5 * np.abs(q - p).sum() < 1e-6


@pytest.mark.parametrize("backend_sampling", [False, True])
def test_sample_k_logliks_are_the_users(gemma, backend_sampling):
    """sample_k's sequence decodes in a rollout context (and in-graph in one
    of its shape): the log-likelihood of a one-token completion is log p of
    llm's own logits after the same decode calls. (One sequence: in-graph,
    k sequences decode the prompt's last token as k rows of one batch, and
    with flash attention off llama.cpp's CPU kernels round a row of a
    2-row batch differently, by 0.02 in log p here, with or without this fix.)"""
    tokens = gemma.tokenize(PROMPT)
    logp = log_softmax(user_logits(gemma, tokens, split_last=backend_sampling))
    out = ls.sample_k(gemma, tokens, 1, ls.Softmax(1.0), max_tokens=1, seed=5,
                      backend_sampling=backend_sampling)
    for toks, ll in zip(out.tokens, out.logliks):
        assert len(toks) == 1
        assert ll == pytest.approx(logp[toks[0]], abs=1e-4)


def test_smc_at_alpha_one_weighs_by_the_users_p(gemma):
    """SMC at alpha = 1 is plain sampling from llm's p: each particle's
    one-token log-likelihood is log p of llm's own logits."""
    tokens = gemma.tokenize(PROMPT)
    logp = log_softmax(user_logits(gemma, tokens))
    out = ls.smc_particles(gemma, tokens, ls.SMCPowerSampler(alpha=1.0, particles=4), max_tokens=1, seed=7)
    assert len(out.tokens) == 4
    for toks, ll in zip(out.tokens, out.logliks):
        assert ll == pytest.approx(logp[toks[0]], abs=1e-4)


def test_chain_member_follows_the_generate_path(gemma):
    """SMC as a llama.cpp chain member (create_completion) makes its particles'
    context with llm's numerics too: the same seed draws the completion the
    generate path (checked above against llm's logits) draws."""
    s = ls.SMCPowerSampler(alpha=1.0, particles=4)
    out = ls.create_completion(gemma, PROMPT.decode(), s, max_tokens=3, seed=2)
    expect = s.run(gemma, ls.integration._prompt_tokens(gemma, PROMPT.decode()), 3, 2, False).tokens
    assert out["choices"][0]["text"] == gemma.detokenize(expect).decode("utf-8", errors="replace")


def test_only_samplers_with_contexts_take_numerics(tiny_llm):
    address = context_params_address(tiny_llm)
    assert address == ctypes.addressof(tiny_llm.context_params)
    assert ls.Softmax(1.0).native().set_context_params(address) == 0
    assert ls.SMCPowerSampler(particles=2).native(llm=tiny_llm).set_context_params(address) == 1
    assert ls.PowerSampler(alpha=2.0).native(llm=tiny_llm).set_context_params(address) == 1
    chain = _core.make_chain([ls.TopK(4).native(), ls.PowerSampler(alpha=2.0).native(llm=tiny_llm)])
    assert chain.set_context_params(address) == 1
    assert context_params_address(object()) == 0  # no context_params: llama.cpp's defaults


@pytest.mark.parametrize("threads", [(1, 2), (2, 1)], ids=["1_then_2", "2_then_1"])
def test_rollout_context_decodes_on_the_users_threads(tiny_model_path, threads):
    """llama.cpp decodes one-token batches on n_threads and wider ones on
    n_threads_batch (llama_cpp.Llama: half and all of the cores); our contexts
    decode both kinds (SMC mostly 2-8 rows a step), so they take both counts.
    With n_threads for both, SMC N = 8 at 64 tokens on Gemma here was
    1.5-4.5x plain sampling, 1.2-2.8x with the user's counts
    (scripts/bench_smc_quiet.py)."""
    n_threads, n_threads_batch = threads
    llm = llama_cpp.Llama(model_path=str(tiny_model_path), n_ctx=256, n_threads=n_threads,
                          n_threads_batch=n_threads_batch, verbose=False)
    try:
        ctx = llama_cpp.llama_context_p(rollout_context(llm, 256, 2).address)
        assert (llama_cpp.llama_n_threads(ctx), llama_cpp.llama_n_threads_batch(ctx)) == threads
    finally:
        llm.close()
