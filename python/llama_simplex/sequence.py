"""Sequence-level samplers: decoders whose law is over whole sequences, not a
next-token distribution a llama.cpp chain can apply one token at a time.

They share :class:`SequenceSampler`: :meth:`~SequenceSampler.run` computes
the whole output on a model (its rollouts or proposals in a context of its
own), and :func:`llama_simplex.generate`, :func:`llama_simplex.sample_k`,
:func:`llama_simplex.create_completion` and ``serve`` ask the base what they
need (``run``, ``in_chain``, ``rollout_cost``) instead of naming the
concrete classes, so a new one (SMC, ...) is one class here and nothing
anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Dict, List, Optional, Sequence

import llama_cpp

from . import _core
from .handles import context_params_address, model_address
from .samplers import Sampler

__all__ = ["SequenceSampler", "SequenceResult", "RolloutCost"]


@dataclass
class SequenceResult:
    """A finished run: the output tokens, the run's counters (rollouts,
    rollout tokens, proposals, ...) and its wall-clock seconds."""

    tokens: List[int]
    stats: Dict[str, int]
    seconds: float


@dataclass(frozen=True)
class RolloutCost:
    """What one output token costs a sampler that runs inside a chain, for
    a server to bound before any work: the longest rollout (horizon, tokens),
    the rollout-context cells it holds at once and the rollout tokens it
    decodes, each with the formula that gives it (for the refusal message)."""

    horizon: int
    cells: int
    cells_formula: str
    tokens: int
    tokens_formula: str


class SequenceSampler(Sampler):
    """Base class of the sequence-level samplers (power, block power, MCMC).

    in_chain: True when :meth:`native` can also build a member of a llama.cpp
    chain (given the model: ``native(seed, llm=..., max_tokens=...)``) that
    learns the sequence through accept() (form (a)); False when the sampler
    only runs whole, through :func:`llama_simplex.generate`.

    They keep their CPU orchestration (rollouts, resampling, acceptance
    tests): ``generate(..., backend_sampling=True)`` and ``sample_k``
    refuse them with ValueError; only token-level decoders sample in-graph.
    """

    in_chain: ClassVar[bool] = False
    # What to call instead of sample_k for several outputs (named in sample_k's refusal).
    many_outputs: ClassVar[str] = "generate()"

    def run(self, llm: llama_cpp.Llama, prompt_tokens: Sequence[int], max_tokens: int, seed: int,
            progress: bool) -> SequenceResult:
        """Generates up to `max_tokens` tokens after `prompt_tokens` on `llm`'s
        model with `seed`, reporting progress on stderr when `progress`.
        The caller holds `llm` (its rollout context is cached there)."""
        raise NotImplementedError

    def native(self, seed: Optional[int] = None, *, llm: Optional[llama_cpp.Llama] = None,
               n_ctx: Optional[int] = None, max_tokens: int = 0) -> _core.NativeSampler:
        """The chain member of an ``in_chain`` sampler; the others run only through generate()."""
        raise NotImplementedError(f"{type(self).__name__} runs through llama_simplex.generate(), not inside a chain")

    def _chain_member(self, llm: llama_cpp.Llama, seed: Optional[int], rollout_seed: int, n_ctx: int,
                      max_tokens: int) -> _core.NativeSampler:
        """The table's chain member (the one constructor llama-server uses too) on
        `llm`'s model: its own context of n_ctx cells, computing `llm`'s logits
        (its context numerics), rollouts seeded by rollout_seed; with a seed,
        its draw takes a stream apart from the rollouts'."""
        native = _core.make_sampler(self.SPEC["name"], {**self.params(), "n_ctx": n_ctx, "rollout_seed": rollout_seed,
                                                        "max_tokens": max_tokens}, model=model_address(llm))
        native.set_context_params(context_params_address(llm))
        if seed is not None:
            native.enable_draw((rollout_seed * 2654435761 + 1) % 4294967295)
        return native

    def rollout_cost(self) -> Optional[RolloutCost]:
        """What each output token costs in a chain (None: nothing to bound)."""
        return None
