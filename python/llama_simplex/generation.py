"""generate(): the decode loop in C++, streamed to Python through an iterator."""

from __future__ import annotations

import ctypes
import os
import secrets
import weakref
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, Union

import llama_cpp

from . import _core
from . import _validate as v
from .handles import LlamaLike, context_address, context_params_address, context_use, load_model, model_address
from .samplers import SEED_MAX, Sampler, Softmax
from .sequence import SequenceSampler

# load_model, model_address and context_address are re-exported: they were
# importable from here before the handle cache had a module of its own.
__all__ = ["generate", "Generation", "load_model", "LlamaLike", "model_address", "context_address"]


class Generation:
    """A running generation. Iterate it for text pieces as they are decoded;
    read :attr:`text` (or call :meth:`wait`) to run the rest in C++ at once.

    It keeps the Llama, the native sampler and the decode loop alive. Several
    generations may be live on one Llama and be advanced in any order (also
    from several threads; each step holds the Llama): when another generation
    takes the context, this one's KV cells and logits are saved and restored
    exactly when it resumes, so its tokens are those it would produce alone.
    If llama_cpp itself used the context in between, it decodes its prompt
    and tokens so far again with the same decode calls as the first time
    (the same tokens, at the cost of one decode per token so far). After
    ``llm.close()``, a generation that had not finished raises RuntimeError
    when advanced; a finished one still reads.
    """

    def __init__(self, llm: llama_cpp.Llama, generator: _core.Generator, native: _core.NativeSampler,
                 seed: int, sampler: Sampler, own_context: bool = False) -> None:
        self._llm = llm  # keeps the context alive as long as the generator
        self._generator = generator
        self._native = native
        self._use = context_use(llm)
        self._use.live.add(self)
        self.seed = seed
        self.sampler = sampler
        self._own_context = own_context  # backend_sampling: the loop decodes in a context of its own

    def _detach(self) -> None:
        """Cuts the decode loop from the context (the Llama is being closed)."""
        self._generator.detach()

    def _claim(self) -> None:
        """Before a step, with the lock held: refuse a closed Llama, and have the
        loop decode again if another user replaced the context's memory."""
        if self._use.closed or not ctypes.cast(self._llm.ctx, ctypes.c_void_p).value:
            self._generator.detach()
            raise RuntimeError(f"llm: the Llama was closed before this generation finished "
                               f"({len(self._generator.tokens)} tokens so far); it cannot continue")
        if self._own_context:
            return  # llm's context is not used: nothing to save or decode again
        owner = self._use.owner() if self._use.owner is not None else None
        if owner is self and self._llm.n_tokens == 0:
            return
        # llama_cpp's own calls leave n_tokens > 0 (we keep it at 0): then the
        # cache holds neither generation. Otherwise the one it holds saves
        # its state, restored exactly when it resumes.
        if owner is not None and self._llm.n_tokens == 0:
            owner._generator.suspend()
        self._generator.mark_stale()  # a suspended generation restores instead
        self._llm.reset()  # llama_cpp must not reuse a prefix of what we leave
        self._use.owner = weakref.ref(self)

    def _step(self) -> Optional[Tuple[int, str]]:
        """One step of the loop: (token, new text), token -1 when only held-back text is left; None at the end."""
        with self._use.lock:
            if self._generator.done:
                return None
            self._claim()
            try:
                return next(self._generator)
            except StopIteration:
                return None

    def _steps(self) -> Iterator[Tuple[int, str]]:
        while (step := self._step()) is not None:
            if step[0] >= 0 or step[1]:
                yield step

    def __iter__(self) -> Iterator[str]:
        for _token, text in self._steps():
            if text:
                yield text

    def wait(self) -> "Generation":
        """Runs the generation to its end in C++ (nothing to do once it has
        ended, also when a callback stopped it)."""
        with self._use.lock:
            if not self._generator.done:
                self._claim()
                self._generator.run()
        return self

    def stop(self) -> "Generation":
        """Ends the generation where it is (finish_reason 'stopped')."""
        with self._use.lock:
            self._generator.stop("stopped")
        return self

    @property
    def text(self) -> str:
        """The whole generated text (runs the generation to its end)."""
        with self._use.lock:  # not while another thread steps this generation
            return self.wait()._generator.text.decode("utf-8", errors="replace")

    @property
    def tokens(self) -> List[int]:
        """The generated token ids (runs the generation to its end)."""
        with self._use.lock:
            return list(self.wait()._generator.tokens)

    @property
    def finish_reason(self) -> str:
        """'stop' (end of generation or a stop string), 'length', 'callback'
        (the callback returned False), 'stopped' (:meth:`stop`), 'error', or
        '' while running."""
        with self._use.lock:
            return self._generator.finish_reason

    @property
    def n_prompt_tokens(self) -> int:
        return self._generator.n_prompt


class FinishedGeneration(Generation):
    """A generation computed whole (a :class:`~llama_simplex.sequence.SequenceSampler`'s): iterating yields its text once."""

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

    def stop(self) -> "Generation":
        return self  # already finished

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


def _run_whole(llm: llama_cpp.Llama, tokens: List[int], sampler: SequenceSampler, max_tokens: int, seed: int,
               stops: List[str], progress: bool) -> Generation:
    result = sampler.run(llm, tokens, max_tokens, seed, progress)
    text = _core.detokenize(model_address(llm), result.tokens).decode("utf-8", errors="replace")
    finish = "length" if len(result.tokens) >= max_tokens else "stop"
    for s in stops:  # stop strings apply to the finished text
        if s in text:
            text, finish = text[: text.index(s)], "stop"
    stats = dict(result.stats, seconds=result.seconds)
    return FinishedGeneration(llm, result.tokens, text, finish, seed, sampler, len(tokens), stats)


def check_backend_sampling(backend_sampling: bool, sampler: Sampler) -> bool:
    """Validates generate's and sample_k's backend_sampling: a bool, and
    False for a sequence-level sampler (its rollouts are orchestrated on
    the CPU; only its token-level decoders have in-graph forms)."""
    if not isinstance(backend_sampling, bool):
        raise TypeError(f"backend_sampling must be a bool, got {type(backend_sampling).__name__}")
    if backend_sampling and isinstance(sampler, SequenceSampler):
        raise ValueError(f"backend_sampling: {type(sampler).__name__} is a sequence-level sampler, orchestrated on "
                         "the CPU (rollouts, resampling); only token-level decoders sample in-graph: "
                         "use backend_sampling=False")
    return backend_sampling


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
    max_tokens = v.integer("max_tokens", max_tokens, low=0, limit=v.INT32_MAX)
    seed = secrets.randbelow(SEED_MAX + 1) if seed is None else v.integer("seed", seed, low=0, high=SEED_MAX)
    if stop is not None and not isinstance(stop, (str, list, tuple)):
        raise TypeError(f"stop must be a string or a list of strings, got {type(stop).__name__}")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    for i, s in enumerate(stops):
        if not isinstance(s, str):
            raise TypeError(f"stop[{i}] must be a non-empty string, got {type(s).__name__} {s!r}")
        if not s:
            raise ValueError(f"stop[{i}] must be a non-empty string, got {s!r}")
    if not isinstance(add_special, bool):
        raise TypeError(f"add_special must be a bool, got {type(add_special).__name__}")
    if isinstance(prompt, (bytes, bytearray, memoryview)):
        # Iterating bytes gives integers: never read them as token ids.
        raise TypeError(f"prompt must be a str or a sequence of token ids, got {type(prompt).__name__} "
                        "(decode bytes first, e.g. prompt.decode('utf-8'))")
    if isinstance(prompt, str):
        tokens = _core.tokenize(model_address(llm), prompt, add_special, False)
    elif isinstance(prompt, (list, tuple, range)) or (hasattr(prompt, "__len__") and hasattr(prompt, "__getitem__")
                                                      and not isinstance(prompt, dict)):
        tokens = [v.integer(f"prompt[{i}]", t, low=0, limit=v.INT32_MAX) for i, t in enumerate(prompt)]
    else:
        raise TypeError(f"prompt must be a str or a sequence of token ids, got {type(prompt).__name__}")
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
    backend_sampling: bool = False,
) -> Generation:
    """Generates text from `prompt` with `sampler` (default: ``Softmax(1.0)``,
    ordinary sampling); the decode loop runs in C++.

    llm: a ``llama_cpp.Llama`` or a GGUF path. prompt: text (str) or token
    ids (a list of int); bytes are refused (TypeError), decode them first.
    seed: the draw's seed (random when None; the seed used is on the result);
    it decides every draw, also a :class:`~llama_simplex.Chain`'s (whose last
    member draws) and an explicit ``Dist``'s. stop: strings that end the
    text (not included). callback: called with (token id, new text) for each
    token; return False to stop: the generation then stays stopped
    (finish_reason 'callback'). Returns a :class:`Generation`.
    A :class:`~llama_simplex.sequence.SequenceSampler` (power sampling,
    block power, MCMC) runs whole in C++ (rollouts on a forked KV cache) and
    returns the finished generation; it reports tokens done and rollouts per
    second on stderr unless progress=False.
    backend_sampling: sample inside the model's compute graph (llama.cpp's
    backend sampling): greedy, softmax, top-k, top-p, min-p, sparsemax,
    dist and Best-of-K (objectives without ½‖q‖² over the full vocabulary)
    compute q and draw the token as graph ops, alone or as a Chain's leading
    members, so the logits stay on the device; q is the CPU path's
    (docs/math.md §1-2). On a CPU device the graph op is the CPU kernel
    itself (the host form), whose seeded draws are the CPU path's tokens;
    on a GPU (or with LLAMA_SIMPLEX_GRAPH_FORM=portable) a graph of ggml
    element-wise ops draws from the same q, seeded, other tokens; any other
    LLAMA_SIMPLEX_GRAPH_FORM than auto or portable: ValueError. The loop decodes in a context of its own on llm's model (same shape), so
    llm's context is left alone. A sampler without an in-graph form runs on
    the CPU as usual. Sequence samplers (power, block power, MCMC) keep
    their CPU orchestration: ValueError.
    """
    llm, tokens, sampler, max_tokens, seed, stops = prepare(llm, prompt, sampler, max_tokens, seed, stop, add_special)
    backend_sampling = check_backend_sampling(backend_sampling, sampler)
    if isinstance(sampler, SequenceSampler):
        with context_use(llm).lock:  # its rollout context is cached on llm, one at a time
            return _run_whole(llm, tokens, sampler, max_tokens, seed, stops, progress is not False)

    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    native = sampler.native(seed=seed)  # always selects: its last member draws with `seed`
    generator = _core.Generator(context_address(llm), native, tokens, max_tokens,
                                [s.encode("utf-8").decode("utf-8") for s in stops],
                                backend_sampling=backend_sampling, context_params=context_params_address(llm))
    result = Generation(llm, generator, native, seed, sampler, own_context=backend_sampling)
    if callback is not None:
        for token, text in result._steps():
            if callback(token, text) is False:
                generator.stop("callback")
                break
    return result
