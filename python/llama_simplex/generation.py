"""generate(): the decode loop in C++, streamed to Python through an iterator."""

from __future__ import annotations

import atexit
import ctypes
import os
import weakref
import secrets
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import llama_cpp

from . import _core
from . import _validate as v
from .models import resolve_model
from .samplers import SEED_MAX, Sampler, Softmax

__all__ = ["generate", "Generation", "load_model", "LlamaLike"]

LlamaLike = Union[llama_cpp.Llama, str, os.PathLike]

_loaded: Dict[Tuple[str, int, int], llama_cpp.Llama] = {}


def load_model(model: Optional[Union[str, os.PathLike]] = None, *, n_ctx: int = 2048, n_gpu_layers: int = -1,
               **llama_kwargs) -> llama_cpp.Llama:
    """A ``llama_cpp.Llama`` for a GGUF path (resolved as in :func:`resolve_model`),
    loaded once per (path, n_ctx, n_gpu_layers) and reused. ``n_gpu_layers``
    -1 puts every layer on the GPU when llama.cpp was built with CUDA or Metal
    (unlike llama_cpp.Llama's default of 0) and changes nothing on a CPU build.
    Other keyword arguments go to ``llama_cpp.Llama`` and give a fresh, uncached object."""
    n_ctx = v.integer("n_ctx", n_ctx, low=16)
    n_gpu_layers = v.integer("n_gpu_layers", n_gpu_layers, low=-1)
    path = resolve_model(model)
    key = (str(path.resolve()), n_ctx, n_gpu_layers)
    if key not in _loaded or llama_kwargs:
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, verbose=False,
                              **llama_kwargs)
        if llama_kwargs:
            return llm
        _loaded[key] = llm
    return _loaded[key]


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


# Every Llama holding contexts of ours: freed at exit while the interpreter is
# whole, because freeing a context logs through llama_cpp's Python callback.
_holders: "weakref.WeakSet[llama_cpp.Llama]" = weakref.WeakSet()


@atexit.register
def _free_rollout_contexts() -> None:
    for llm in list(_holders):
        llm.__dict__.get("_llama_simplex_contexts", {}).clear()


def rollout_context(llm: llama_cpp.Llama, n_ctx: int, n_seq: int, n_ubatch: int = 0) -> _core.RolloutContext:
    """A context of our own on `llm`'s model with a unified KV cache for forked
    sequences. Cached on `llm`, one at a time (each holds a KV cache), and
    freed before the model when `llm` is closed."""
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
        n_threads = int(getattr(llm, "n_threads", 0) or 0)
        cache[key] = _core.RolloutContext(model_address(llm), n_ctx, n_seq, n_threads, max(64, n_seq), n_ubatch)
    return cache[key]


class Generation:
    """A running generation. Iterate it for text pieces as they are decoded;
    read :attr:`text` (or call :meth:`wait`) to run the rest in C++ at once."""

    def __init__(self, llm: llama_cpp.Llama, generator: _core.Generator, native: _core.NativeSampler,
                 seed: int, sampler: Sampler) -> None:
        self._llm = llm  # keeps the context alive as long as the generator
        self._generator = generator
        self._native = native
        self.seed = seed
        self.sampler = sampler

    def __iter__(self) -> Iterator[str]:
        for _token, text in self._generator:
            if text:
                yield text

    def wait(self) -> "Generation":
        """Runs the generation to its end in C++."""
        self._generator.run()
        return self

    @property
    def text(self) -> str:
        """The whole generated text (runs the generation to its end)."""
        self.wait()
        return self._generator.text.decode("utf-8", errors="replace")

    @property
    def tokens(self) -> List[int]:
        """The generated token ids (runs the generation to its end)."""
        self.wait()
        return list(self._generator.tokens)

    @property
    def finish_reason(self) -> str:
        """'stop' (end of generation or a stop string), 'length', or '' while running."""
        return self._generator.finish_reason

    @property
    def n_prompt_tokens(self) -> int:
        return self._generator.n_prompt


class FinishedGeneration(Generation):
    """A generation computed whole (power sampling): iterating yields its text once."""

    def __init__(self, llm: llama_cpp.Llama, tokens: List[int], text: str, finish_reason: str, seed: int,
                 sampler: Sampler, n_prompt: int, stats: Optional[dict] = None) -> None:
        self._llm = llm
        self._tokens = tokens
        self._text = text
        self._finish = finish_reason
        self._n_prompt = n_prompt
        self.seed = seed
        self.sampler = sampler
        self.stats = stats or {}

    def __iter__(self) -> Iterator[str]:
        if self._text:
            yield self._text

    def wait(self) -> "Generation":
        return self

    @property
    def text(self) -> str:
        return self._text

    @property
    def tokens(self) -> List[int]:
        return list(self._tokens)

    @property
    def finish_reason(self) -> str:
        return self._finish

    @property
    def n_prompt_tokens(self) -> int:
        return self._n_prompt


def _power(llm: llama_cpp.Llama, tokens: List[int], sampler: Sampler, max_tokens: int, seed: int,
           stops: List[str], progress: bool) -> Generation:
    from .power import run_power
    result = run_power(llm, tokens, sampler, max_tokens, seed, progress)
    text = _core.detokenize(model_address(llm), result.tokens).decode("utf-8", errors="replace")
    finish = "length" if len(result.tokens) >= max_tokens else "stop"
    for s in stops:  # stop strings apply to the finished text
        if s in text:
            text, finish = text[: text.index(s)], "stop"
    stats = dict(result.stats, seconds=result.seconds)
    return FinishedGeneration(llm, result.tokens, text, finish, seed, sampler, len(tokens), stats)


def prepare(llm: LlamaLike, prompt: Union[str, Sequence[int]], sampler: Optional[Sampler], max_tokens: int,
            seed: Optional[int], stop: Union[str, Sequence[str], None], add_special: bool):
    """Validates the arguments every generation entry point shares; returns
    (llm, prompt tokens, sampler, max_tokens, seed, stop strings)."""
    if not isinstance(llm, llama_cpp.Llama):
        if not isinstance(llm, (str, os.PathLike)):
            raise TypeError(f"llm must be a llama_cpp.Llama or a GGUF path, got {type(llm).__name__}")
        llm = load_model(llm)
    sampler = Softmax() if sampler is None else sampler
    if not isinstance(sampler, Sampler):
        raise TypeError(f"sampler must be a llama_simplex Sampler, got {type(sampler).__name__}")
    max_tokens = v.integer("max_tokens", max_tokens, low=0)
    seed = secrets.randbelow(SEED_MAX + 1) if seed is None else v.integer("seed", seed, low=0, high=SEED_MAX)
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    for i, s in enumerate(stops):
        if not isinstance(s, str) or not s:
            raise ValueError(f"stop[{i}] must be a non-empty string, got {s!r}")
    if isinstance(prompt, str):
        tokens = _core.tokenize(model_address(llm), prompt, add_special, False)
    else:
        tokens = [v.integer(f"prompt[{i}]", t, low=0) for i, t in enumerate(prompt)]
    if not tokens:
        raise ValueError("prompt must hold at least one token")
    return llm, tokens, sampler, max_tokens, seed, stops


def generate(
    llm: LlamaLike,
    prompt: Union[str, Sequence[int]],
    sampler: Optional[Sampler] = None,
    *,
    max_tokens: int = 128,
    seed: Optional[int] = None,
    stop: Union[str, Sequence[str], None] = None,
    callback: Optional[Callable[[int, str], Optional[bool]]] = None,
    add_special: bool = True,
    progress: Optional[bool] = None,
) -> Generation:
    """Generates text from `prompt` with `sampler` (default: ``Softmax(1.0)``,
    ordinary sampling); the decode loop runs in C++.

    llm: a ``llama_cpp.Llama`` or a GGUF path. seed: the draw's seed (random
    when None; the seed used is on the result). stop: strings that end the
    text (not included). callback: called with (token id, new text) for each
    token; return False to stop early. Returns a :class:`Generation`.
    A :class:`~llama_simplex.power.PowerSampler` runs its rollouts in C++ on a
    forked KV cache and returns the finished generation; it reports tokens
    done and rollouts per second on stderr unless progress=False.
    """
    llm, tokens, sampler, max_tokens, seed, stops = prepare(llm, prompt, sampler, max_tokens, seed, stop, add_special)

    from .power import BlockPowerSampler, MCMCPowerSampler, PowerSampler
    if isinstance(sampler, (PowerSampler, BlockPowerSampler, MCMCPowerSampler)):
        return _power(llm, tokens, sampler, max_tokens, seed, stops, progress is not False)

    native = sampler.native(seed=seed)  # draws the token itself unless it ends with its own Dist
    llm.reset()  # our loop clears the KV cache; llama_cpp must not reuse its prefix
    generator = _core.Generator(context_address(llm), native, tokens, max_tokens,
                                [s.encode("utf-8").decode("utf-8") for s in stops])
    result = Generation(llm, generator, native, seed, sampler)
    if callback is not None:
        def call(token: int, text: str) -> bool:
            return callback(token, text) is not False
        generator.run(call)
    return result
