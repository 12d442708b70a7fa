"""Our samplers inside llama-cpp-python's own completion API.

``create_completion(llm, prompt, sampler, ...)`` is ``llm.create_completion``
with the sampler chain replaced by ours (streaming and not); the rest of
llama-cpp-python (prompt cache, stop strings, logprobs, chat formats) is
unchanged. The native sampler runs inside a llama.cpp chain that llama_cpp
owns, on the same libllama.
"""

from __future__ import annotations

import contextlib
import ctypes
import secrets
from typing import Any, Iterator, List, Optional, Union

import llama_cpp
from llama_cpp import _internals

from . import _core
from . import _validate as v
from .samplers import SEED_MAX, Sampler

__all__ = ["create_completion", "use_sampler", "to_llama_cpp"]


def to_llama_cpp(sampler: Sampler, *, seed: Optional[int] = None, **native_kwargs: Any) -> Any:
    """A new native sampler as a llama_cpp ``POINTER(llama_sampler)``, owned by
    the caller: add it to a llama_cpp chain (which then frees it) or free it
    with ``llama_cpp.llama_sampler_free``. With a seed it also draws the token."""
    if not isinstance(sampler, Sampler):
        raise TypeError(f"sampler must be a llama_simplex Sampler, got {type(sampler).__name__}")
    return ctypes.cast(ctypes.c_void_p(sampler.native(seed, **native_kwargs).release()),
                       llama_cpp.llama_sampler_p_ctypes)


def _chain_for(llm: llama_cpp.Llama, sampler: Sampler, seed: int,
               history: Optional[List[int]]) -> "_internals.LlamaSampler":
    chain = _internals.LlamaSampler()
    from .power import PowerSampler
    if isinstance(sampler, PowerSampler):
        # Its rollouts need the model and the sequence so far (the prompt); its
        # context's default size is what they need after llm's whole context.
        native = sampler.native(seed, llm=llm)
        for t in history or []:
            native.accept(t)
    else:
        native = sampler.native(seed)
    # The llama_cpp chain frees it when it is closed.
    llama_cpp.llama_sampler_chain_add(chain.sampler,
                                      ctypes.cast(ctypes.c_void_p(native.release()), llama_cpp.llama_sampler_p_ctypes))
    return chain


@contextlib.contextmanager
def use_sampler(llm: llama_cpp.Llama, sampler: Sampler, *, seed: Optional[int] = None,
                history: Optional[List[int]] = None) -> Iterator[llama_cpp.Llama]:
    """Within the block, every completion of `llm` samples with `sampler`
    (a fresh, identically seeded chain per completion). history: the prompt's
    tokens, for samplers that need the sequence (PowerSampler)."""
    if not isinstance(sampler, Sampler):
        raise TypeError(f"sampler must be a llama_simplex Sampler, got {type(sampler).__name__}")
    seed = secrets.randbelow(SEED_MAX + 1) if seed is None else v.integer("seed", seed, low=0, high=SEED_MAX)
    had_own = "_init_sampler" in vars(llm)
    previous = vars(llm).get("_init_sampler")
    llm._init_sampler = lambda *args, **kwargs: _chain_for(llm, sampler, seed, history)  # type: ignore[method-assign]
    try:
        yield llm
    finally:
        # Free llama_cpp's chain (and our samplers in it) now, not whenever it
        # is collected: a PowerSampler's own context must go before the model.
        if getattr(llm, "_sampler", None) is not None:
            llm._sampler.close()
            llm._sampler = None
        if had_own:
            llm._init_sampler = previous  # type: ignore[method-assign]
        else:
            del llm._init_sampler


def create_completion(llm: llama_cpp.Llama, prompt: Union[str, list], sampler: Sampler, *,
                      seed: Optional[int] = None, stream: bool = False, **kwargs: Any) -> Any:
    """``llm.create_completion(prompt, stream=stream, **kwargs)`` sampling with `sampler`.

    Sampling keywords of llama-cpp-python (temperature, top_k, ...) are not
    used: the sampler decides. With stream=True, returns an iterator of chunks.
    """
    ignored = {"temperature", "top_k", "top_p", "min_p", "typical_p", "mirostat_mode"} & set(kwargs)
    if ignored:
        raise ValueError(f"{sorted(ignored)}: set these on the llama_simplex sampler, not on create_completion")
    from .power import PowerSampler
    history = None
    if isinstance(sampler, PowerSampler):
        # Tokenize here and pass the ids, so the sampler learns exactly the prompt llama_cpp decodes.
        from .generation import model_address
        if isinstance(prompt, str):
            prompt = _core.tokenize(model_address(llm), prompt, True, False)
        history = list(prompt)
    if not stream:
        with use_sampler(llm, sampler, seed=seed, history=history):
            return llm.create_completion(prompt, stream=False, **kwargs)

    def chunks() -> Iterator[Any]:
        with use_sampler(llm, sampler, seed=seed, history=history):
            yield from llm.create_completion(prompt, stream=True, **kwargs)

    return chunks()
