"""The model and handle cache: Llama objects loaded once per path, the raw
llama_model/llama_context addresses the native code takes, the rollout
contexts of our own cached on a Llama, and the lock and ownership record of
each Llama's llama_context shared by every generation on it."""

from __future__ import annotations

import atexit
import ctypes
import os
import threading
import weakref
from typing import Any, Dict, Optional, Tuple, Union

import llama_cpp

from . import _core
from . import _validate as v
from .models import resolve_model

__all__ = ["load_model", "model_address", "context_address", "context_params_address", "rollout_context",
           "context_use", "LlamaLike"]

LlamaLike = Union[llama_cpp.Llama, str, os.PathLike]

_loaded: Dict[Tuple[str, int, int], llama_cpp.Llama] = {}


def load_model(model: Optional[Union[str, os.PathLike]] = None, *, n_ctx: int = 2048, n_gpu_layers: int = -1,
               **llama_kwargs) -> llama_cpp.Llama:
    """A ``llama_cpp.Llama`` for a GGUF path (resolved as in :func:`resolve_model`),
    loaded once per (path, n_ctx, n_gpu_layers) and reused. ``n_gpu_layers``
    -1 puts every layer on the GPU when llama.cpp was built with CUDA or Metal
    (unlike llama_cpp.Llama's default of 0) and changes nothing on a CPU build.
    Other keyword arguments go to ``llama_cpp.Llama`` and give a fresh, uncached object."""
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a path to a GGUF file (str or os.PathLike) or None, got {type(model).__name__}")
    n_ctx = v.integer("n_ctx", n_ctx, low=16, limit=v.INT32_MAX)
    n_gpu_layers = v.integer("n_gpu_layers", n_gpu_layers, low=-1, limit=v.INT32_MAX)
    path = resolve_model(model)
    key = (str(path.resolve()), n_ctx, n_gpu_layers)
    if key not in _loaded or llama_kwargs:
        _check_context_memory(path, n_ctx, n_gpu_layers, llama_kwargs)
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, verbose=False,
                              **llama_kwargs)
        if llama_kwargs:
            return llm
        _loaded[key] = llm
    return _loaded[key]


def _check_context_memory(path: os.PathLike, n_ctx: int, n_gpu_layers: int, llama_kwargs: Dict[str, Any]) -> None:
    """Refuses an n_ctx whose context (KV cache, outputs, attention scores of
    one micro-batch; the estimate of the rollout contexts, cpp/src/rollout.cpp)
    would not fit in the memory available, before llama.cpp allocates it:
    an allocation that large fails or gets the process killed. The model's
    shape comes from the GGUF's metadata (nothing loaded). When the cache
    goes to a GPU (a GPU build, layers offloaded) llama.cpp checks that
    memory itself."""
    if n_gpu_layers != 0 and llama_cpp.llama_supports_gpu_offload():
        return
    n_ubatch = min(int(llama_kwargs.get("n_batch", 512)), int(llama_kwargs.get("n_ubatch", 512)))
    need = _core.gguf_context_bytes(str(path), n_ctx, 1, max(1, min(n_ubatch, n_ctx)))
    have = _core.available_memory_bytes()
    if need > have:
        raise ValueError(f"n_ctx: a context of {n_ctx} tokens on {os.fspath(path)!r} needs about {-(-need >> 20)} MiB "
                         f"(KV cache and buffers), more than the {have >> 20} MiB of memory available; "
                         f"choose a smaller n_ctx")


def _address(ptr: object) -> int:
    value = ctypes.cast(ptr, ctypes.c_void_p).value
    if not value:
        raise ValueError("llm: the llama_cpp.Llama object has no live model/context (was it closed?)")
    return value


def model_address(llm: llama_cpp.Llama) -> int:
    """The ``llama_model*`` of a Llama object, as an integer."""
    return _address(llm.model)


def context_address(llm: llama_cpp.Llama) -> int:
    """The ``llama_context*`` of a Llama object, as an integer."""
    return _address(llm.ctx)


def context_params_address(llm: llama_cpp.Llama) -> int:
    """The address of the ``llama_context_params`` `llm`'s context was made
    with (``llm.context_params``), for the native code that makes contexts of
    our own on its model: it copies their numerics (flash attention, KV cache
    types, RoPE/YaRN scaling, offloading; cpp/include/llama_simplex/rollout.h
    ContextNumerics) so that those contexts compute `llm`'s logits. 0 (llama.cpp's
    defaults) when `llm` has no ctypes ``context_params`` (not a llama_cpp.Llama)."""
    params = getattr(llm, "context_params", None)
    if not isinstance(params, llama_cpp.llama_context_params):
        return 0
    if ctypes.sizeof(params) != _core.CONTEXT_PARAMS_SIZE:  # another llama.h than the one we were built with
        raise RuntimeError(f"llama_cpp's llama_context_params has {ctypes.sizeof(params)} bytes, the llama.h "
                           f"llama_simplex was built with {_core.CONTEXT_PARAMS_SIZE}: reinstall llama_simplex "
                           f"against this llama_cpp")
    return ctypes.addressof(params)


# Every Llama holding contexts of ours: freed at exit while the interpreter is
# whole, because freeing a context logs through llama_cpp's Python callback.
_holders: "weakref.WeakSet[llama_cpp.Llama]" = weakref.WeakSet()


@atexit.register
def _free_rollout_contexts() -> None:
    for llm in list(_holders):
        llm.__dict__.get("_llama_simplex_contexts", {}).clear()


def rollout_context(llm: llama_cpp.Llama, n_ctx: int, n_seq: int, n_ubatch: int = 0) -> _core.RolloutContext:
    """A context of our own on `llm`'s model with a unified KV cache for forked
    sequences, computing `llm`'s logits on its threads (its context's
    settings: :func:`context_params_address`). Cached on `llm`, one at a time (each
    holds a KV cache), and freed before the model when `llm` is closed."""
    cache = llm.__dict__.get("_llama_simplex_contexts")
    if cache is None:
        cache = llm.__dict__["_llama_simplex_contexts"] = {}
        stack = getattr(llm, "_stack", None)
        if stack is not None:  # llama_cpp frees the model through this ExitStack: run first
            stack.callback(cache.clear)
        _holders.add(llm)
    key = (n_ctx, n_seq, n_ubatch)
    if key not in cache:
        cache.clear()
        params = context_params_address(llm)
        # With llm's context_params the context takes its threads from them (one-row
        # and wider batches apart); otherwise llm.n_threads for both.
        n_threads = 0 if params else int(getattr(llm, "n_threads", 0) or 0)
        cache[key] = _core.RolloutContext(model_address(llm), n_ctx, n_seq, n_threads, max(64, n_seq), n_ubatch,
                                          params)
    return cache[key]


class _ContextUse:
    """What the generations on one Llama share: a lock held around every use
    of its llama_context, which generation's tokens the context holds, and
    the live generations, detached when the Llama is closed (before its
    context is freed, so that none can use it afterwards)."""

    def __init__(self, llm: llama_cpp.Llama) -> None:
        self.lock = threading.RLock()
        self.owner: "Optional[weakref.ReferenceType[Any]]" = None  # whose tokens the context holds
        self.closed = False
        self.live: "weakref.WeakSet[Any]" = weakref.WeakSet()
        stack = getattr(llm, "_stack", None)
        if stack is not None:  # llama_cpp frees the context through this ExitStack: run first
            stack.callback(self.close)

    def close(self) -> None:
        with self.lock:  # waits for a step in progress in another thread
            self.closed = True
            for generation in list(self.live):
                generation._detach()


def context_use(llm: llama_cpp.Llama) -> _ContextUse:
    """The lock and ownership record of `llm`'s llama_context (made on first use)."""
    use = llm.__dict__.get("_llama_simplex_use")
    if use is None:
        use = llm.__dict__["_llama_simplex_use"] = _ContextUse(llm)
    return use
