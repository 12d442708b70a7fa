"""Our samplers inside llama-cpp-python's own completion API.

``create_completion(llm, prompt, sampler, ...)`` is ``llm.create_completion``
with the sampler chain replaced by ours (streaming and not), and
``create_chat_completion`` the same for chat; the rest of llama-cpp-python
(stop strings, logprobs, chat formats) is unchanged. The native sampler runs
inside a llama.cpp chain that llama_cpp owns, on the same libllama.

Three things differ from llama_cpp's own behaviour, each so that an answer is
never silently different from what was asked:

* a sampler of ours that cannot select a token (NaN logits, a degenerate
  parameter) raises :class:`SamplingError` naming it and the reason, where
  llama.cpp would abort the process (``GGML_ASSERT(cur_p.selected >= 0)``);
* ``max_tokens`` larger than the context leaves after the prompt is refused
  (llama_cpp shortens it silently);
* a seeded completion starts from an empty KV cache (``reuse_prefix=False``):
  llama_cpp otherwise reuses the previous prompt's prefix, and logits computed
  in a different batch shape differ in the last bits, so the same seed could
  give another text depending on what ran before.
"""

from __future__ import annotations

import contextlib
import ctypes
import inspect
import secrets
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

import llama_cpp
import numpy as np
from llama_cpp import _internals

from . import _core
from . import _validate as v
from .handles import model_address
from .samplers import SEED_MAX, Sampler
from .sequence import SequenceSampler

__all__ = ["create_completion", "create_chat_completion", "use_sampler", "to_llama_cpp", "SamplingError"]

# Why a sampler of ours reported failure (llama_simplex::Status; the texts of
# status_message() in cpp/src/simplex.cpp, which the bindings do not export).
_STATUS_TEXT = {
    1: "a logit is NaN",
    2: "empty support: no candidate has a finite logit",
    3: "no history: the sampler was not given the prompt",
    4: "decoding the rollouts failed (context too small?)",
    5: "q is not a distribution (non-finite or zero mass): the parameters are degenerate for these logits",
}

# llama_cpp keywords that choose its own samplers; ours decides instead.
LLAMA_CPP_SAMPLING = ("temperature", "top_k", "top_p", "min_p", "typical_p", "mirostat_mode", "mirostat_tau",
                       "mirostat_eta", "repeat_penalty", "frequency_penalty", "presence_penalty", "tfs_z",
                       "logits_processor", "grammar", "logit_bias")


class SamplingError(RuntimeError):
    """Our sampler could not select a token; the message names it and says why.
    Raised instead of returning text that no sampler chose."""


def to_llama_cpp(sampler: Sampler, *, seed: Optional[int] = None, **native_kwargs: Any) -> Any:
    """A new native sampler as a llama_cpp ``POINTER(llama_sampler)``, owned by
    the caller: add it to a llama_cpp chain (which then frees it) or free it
    with ``llama_cpp.llama_sampler_free``. With a seed it also draws the token."""
    if not isinstance(sampler, Sampler):
        raise TypeError(f"sampler must be a llama_simplex Sampler, got {type(sampler).__name__}")
    return ctypes.cast(ctypes.c_void_p(sampler.native(seed, **native_kwargs).release()),
                       llama_cpp.llama_sampler_p_ctypes)


def _status(address: int) -> int:
    """The last status of a native sampler the llama_cpp chain owns (read
    without taking ownership: adopt, read, give back)."""
    view = _core.adopt_sampler(address)
    try:
        return view.status
    finally:
        view.release()


class _Guard:
    """The last member of every chain handed to llama_cpp.

    llama.cpp aborts the process when a chain leaves no valid selection
    (``GGML_ASSERT`` in ``llama_sampler_sample``). This member checks what ours
    left: on failure it records why and selects end-of-generation (token 0 on
    a model without one), so llama_cpp ends the completion and the caller
    raises :class:`SamplingError` instead of returning the text."""

    def __init__(self, llm: llama_cpp.Llama, label: str, on_token: Optional[Callable[[], None]]) -> None:
        self.label = label
        self.address = 0  # our native sampler in the chain
        self.stop_token = int(llm.token_eos())
        self.on_token = on_token
        self.tokens = 0
        self.error: Optional[str] = None

    def __call__(self, cur_p: Any) -> None:
        arr = cur_p.contents
        try:
            problem = self._problem(arr)
        except BaseException as e:  # noqa: BLE001 - ctypes would print and drop it, leaving no selection
            problem = f"{type(e).__name__}: {e}"
        if problem is None:
            return
        if self.error is None:
            self.error = f"sampler {self.label} could not select token {self.tokens} of the completion: {problem}"
        # The array is llama.cpp's buffer of n_vocab entries, so entry 0 exists even when size is 0.
        token = self.stop_token if self.stop_token >= 0 else 0
        arr.data[0] = llama_cpp.llama_token_data(token, 0.0, 1.0)
        arr.size = 1
        arr.selected = 0

    def _problem(self, arr: Any) -> Optional[str]:
        """Why the chain's selection cannot be used, or None."""
        self.tokens += 1
        if self.on_token is not None:
            self.on_token()
        status = _status(self.address)
        if status != 0:
            return _STATUS_TEXT.get(status, f"status {status}")
        if not 0 <= arr.selected < arr.size:
            return "it selected no token" + self._why(arr)
        if not (0.0 < arr.data[arr.selected].p <= 1.0 + 1e-3):  # NaN fails too
            return f"it selected a token of probability {arr.data[arr.selected].p}"
        return None

    @staticmethod
    def _why(arr: Any) -> str:
        """What the candidates show (read only on failure: it scans them)."""
        if arr.size == 0:
            return " (it kept no candidate)"
        p = np.ctypeslib.as_array(ctypes.cast(arr.data, ctypes.POINTER(ctypes.c_float)),
                                  shape=(arr.size * 3,))[2::3]  # llama_token_data: id, logit, p
        if not np.isfinite(p).all():
            return (" (its probabilities are not finite: a parameter such as the temperature is outside the range "
                    "this sampler can compute in)")
        return ""

    def check(self) -> None:
        if self.error is not None:
            raise SamplingError(self.error)


def _in_chain(sampler: Sampler) -> bool:
    """Whether `sampler` is a sequence-level sampler that runs inside a chain
    given the model (its rollouts need it), learning the sequence through accept()."""
    return isinstance(sampler, SequenceSampler) and sampler.in_chain


def _chain_for(llm: llama_cpp.Llama, sampler: Sampler, seed: int, history: Optional[List[int]],
               guard: _Guard, max_tokens: int) -> "_internals.LlamaSampler":
    chain = _internals.LlamaSampler()
    if _in_chain(sampler):
        # Its rollouts run on llm's model in a context of their own, sized
        # (one C++ formula) for llm's whole context; they stop at max_tokens
        # (0: none), where the completion must.
        native = sampler.native(seed, llm=llm, max_tokens=max_tokens)
        for t in history or []:
            native.accept(t)
    else:
        native = sampler.native(seed)
    guard.address = native.address
    # The llama_cpp chain frees it when it is closed.
    llama_cpp.llama_sampler_chain_add(chain.sampler,
                                      ctypes.cast(ctypes.c_void_p(native.release()), llama_cpp.llama_sampler_p_ctypes))
    chain.add_custom(guard)
    return chain


def _prompt_tokens_bytes(llm: llama_cpp.Llama, text: Union[str, bytes], add_bos: bool, special: bool) -> List[int]:
    return list(_core.tokenize(model_address(llm), text, add_bos, special))


def _prompt_tokens(llm: llama_cpp.Llama, prompt: Union[str, Sequence[int]]) -> List[int]:
    """The tokens llama_cpp decodes for `prompt` (a text: BOS and special tokens as there)."""
    if isinstance(prompt, str):
        return _prompt_tokens_bytes(llm, prompt, True, True)
    return list(prompt)


def _check_room(llm: llama_cpp.Llama, n_prompt: int, max_tokens: Optional[int]) -> None:
    """llama_cpp shortens max_tokens to what the context leaves; refuse instead."""
    n_ctx = int(llm.n_ctx())
    room = n_ctx - n_prompt
    if room < 1:
        raise ValueError(f"prompt: {n_prompt} tokens leave no room in the context of {n_ctx} tokens")
    if max_tokens is not None and max_tokens > room:
        raise ValueError(f"max_tokens: must be in [1, {room}] (the context of {n_ctx} tokens minus the prompt's "
                         f"{n_prompt}), got {max_tokens}")


_COMPLETION_SIGNATURE = inspect.signature(llama_cpp.Llama.create_completion)


@contextlib.contextmanager
def use_sampler(llm: llama_cpp.Llama, sampler: Sampler, *, seed: Optional[int] = None,
                history: Optional[List[int]] = None, reuse_prefix: Optional[bool] = None,
                on_token: Optional[Callable[[], None]] = None) -> Iterator[llama_cpp.Llama]:
    """Within the block, every completion of `llm` (``create_completion`` and
    ``create_chat_completion``, streamed or not) samples with `sampler`: a
    fresh, identically seeded chain per completion.

    Each completion raises :class:`SamplingError` when the sampler cannot
    select a token and ValueError when max_tokens exceeds the context left
    after the prompt. history: the prompt's tokens for samplers that need the
    sequence (PowerSampler); by default each completion's own prompt.
    reuse_prefix: let llama_cpp reuse the KV cache of the previous prompt's
    common prefix (faster; the answer may then depend on what ran before);
    default: reuse only without a seed. on_token: called once per sampled token.
    """
    if not isinstance(sampler, Sampler):
        raise TypeError(f"sampler must be a llama_simplex Sampler, got {type(sampler).__name__}")
    if reuse_prefix is None:
        reuse_prefix = seed is None
    elif not isinstance(reuse_prefix, bool):
        raise TypeError(f"reuse_prefix must be a bool, got {type(reuse_prefix).__name__}")
    seed = secrets.randbelow(SEED_MAX + 1) if seed is None else v.integer("seed", seed, low=0, high=SEED_MAX)
    needs_history = _in_chain(sampler)
    state: Dict[str, Any] = {"history": history, "guard": None, "max_tokens": 0}
    original = llm.create_completion

    def init_sampler(*args: Any, **kwargs: Any) -> "_internals.LlamaSampler":
        guard = _Guard(llm, sampler.name or type(sampler).__name__, on_token)
        state["guard"] = guard
        return _chain_for(llm, sampler, seed, state["history"], guard, state["max_tokens"])

    def completion(*args: Any, **kwargs: Any) -> Any:
        call = _COMPLETION_SIGNATURE.bind(llm, *args, **kwargs)
        call.apply_defaults()
        a = call.arguments
        tokens = _prompt_tokens(llm, a["prompt"])
        max_tokens = a["max_tokens"]
        limited = max_tokens is not None and max_tokens > 0
        _check_room(llm, len(tokens), max_tokens if limited else None)
        state["max_tokens"] = max_tokens if limited else 0
        if needs_history and history is None:
            # Decode exactly the ids the sampler learns.
            state["history"] = tokens
            a["prompt"] = tokens
        if not reuse_prefix:
            llm.reset()  # llama_cpp's generate() then decodes the whole prompt afresh
        out = original(*call.args[1:], **call.kwargs)
        if not a["stream"]:
            state["guard"].check()
            return out
        return _checked_stream(out, state)

    def tokenize(text: bytes, add_bos: bool = True, special: bool = False) -> List[int]:
        # llama_cpp's own lets llama.cpp's exception for a text the vocabulary
        # cannot cover (no byte fallback) terminate the process; ours raises ValueError.
        return _prompt_tokens_bytes(llm, text, add_bos, special)

    hooks = {"_init_sampler": init_sampler, "create_completion": completion, "tokenize": tokenize}
    saved = {name: vars(llm)[name] for name in hooks if name in vars(llm)}
    for name, hook in hooks.items():
        setattr(llm, name, hook)
    try:
        yield llm
    finally:
        # Free llama_cpp's chain (and our samplers in it) now, not whenever it
        # is collected: a PowerSampler's own context must go before the model.
        if getattr(llm, "_sampler", None) is not None:
            llm._sampler.close()
            llm._sampler = None
        for name in hooks:
            if name in saved:
                setattr(llm, name, saved[name])
            else:
                delattr(llm, name)


def _checked_stream(chunks: Iterator[Any], state: Dict[str, Any]) -> Iterator[Any]:
    """The chunks of a streamed completion, raising SamplingError at the first
    token the sampler could not select (llama_cpp ends the stream there)."""
    try:
        for chunk in chunks:
            guard = state["guard"]
            if guard is not None:
                guard.check()
            yield chunk
        if state["guard"] is not None:
            state["guard"].check()
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _refuse_llama_cpp_sampling(kwargs: Dict[str, Any], where: str) -> None:
    ignored = sorted(set(LLAMA_CPP_SAMPLING) & set(kwargs))
    if ignored:
        raise ValueError(f"{ignored}: set these on the llama_simplex sampler, not on {where}")


def create_completion(llm: llama_cpp.Llama, prompt: Union[str, list], sampler: Sampler, *,
                      seed: Optional[int] = None, stream: bool = False, reuse_prefix: Optional[bool] = None,
                      on_token: Optional[Callable[[], None]] = None, **kwargs: Any) -> Any:
    """``llm.create_completion(prompt, stream=stream, **kwargs)`` sampling with `sampler`.

    Sampling keywords of llama-cpp-python (temperature, top_k, ...) are
    refused: the sampler decides. With stream=True, returns an iterator of
    chunks. Raises :class:`SamplingError` if the sampler cannot select a token
    (with stream=True, from the iterator, after the text decoded until then)
    and ValueError if max_tokens exceeds the context left after the prompt.
    reuse_prefix and on_token: see :func:`use_sampler`.
    """
    _refuse_llama_cpp_sampling(kwargs, "create_completion")
    if not isinstance(stream, bool):
        raise TypeError(f"stream must be a bool, got {type(stream).__name__}")
    if not stream:
        with use_sampler(llm, sampler, seed=seed, reuse_prefix=reuse_prefix, on_token=on_token):
            return llm.create_completion(prompt, stream=False, **kwargs)

    def chunks() -> Iterator[Any]:
        with use_sampler(llm, sampler, seed=seed, reuse_prefix=reuse_prefix, on_token=on_token):
            yield from llm.create_completion(prompt, stream=True, **kwargs)

    return chunks()


def create_chat_completion(llm: llama_cpp.Llama, messages: List[Dict[str, Any]], sampler: Sampler, *,
                           seed: Optional[int] = None, stream: bool = False, reuse_prefix: Optional[bool] = None,
                           on_token: Optional[Callable[[], None]] = None, **kwargs: Any) -> Any:
    """``llm.create_chat_completion(messages, stream=stream, **kwargs)`` sampling
    with `sampler`; otherwise as :func:`create_completion`."""
    _refuse_llama_cpp_sampling(kwargs, "create_chat_completion")
    if not isinstance(stream, bool):
        raise TypeError(f"stream must be a bool, got {type(stream).__name__}")
    if not stream:
        with use_sampler(llm, sampler, seed=seed, reuse_prefix=reuse_prefix, on_token=on_token):
            return llm.create_chat_completion(messages=messages, stream=False, **kwargs)

    def chunks() -> Iterator[Any]:
        with use_sampler(llm, sampler, seed=seed, reuse_prefix=reuse_prefix, on_token=on_token):
            yield from llm.create_chat_completion(messages=messages, stream=True, **kwargs)

    return chunks()
