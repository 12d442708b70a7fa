"""Our samplers inside llama-cpp-python's create_completion and its sampler chain."""

from __future__ import annotations

import ctypes

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
    ours = _core.make_top_k(3, 1.0)
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
