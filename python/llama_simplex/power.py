"""Power sampling [POWER]: draw from π(x) ∝ p(x)^α over whole sequences.

Each next-token candidate (the K most likely tokens) is weighted by
p(v)^α · ζ̂(v), where ζ̂(v) is a Monte Carlo estimate, from M rollouts of at
most H tokens drawn from the model at temperature 1, of E[p(future)^(α-1)];
a jackknife removes the O(1/M) bias of the ratio (docs/math.md §4). The rollouts
run in C++ on forked sequences of one unified KV cache: the prefix is never
copied or re-decoded, and all rollouts of a wave advance in one llama_decode.
"""

from __future__ import annotations

import sys
import time
from typing import Any, ClassVar, Dict, Optional, Sequence

import llama_cpp
import numpy as np
import numpy.typing as npt

from . import _core
from . import _validate as v
from .handles import model_address, rollout_context
from .samplers import SEED_MAX, from_table
from .sequence import RolloutCost, SequenceResult, SequenceSampler

__all__ = ["PowerSampler", "BlockPowerSampler", "MCMCPowerSampler", "power_weights", "PowerResult", "run_power"]

# Rollout batches are computed in slices of this many tokens: it bounds the
# compute buffer (a vocabulary-wide row of logits per token in a slice).
UBATCH = 32

# The result of every sequence-level sampler (its name before they shared a base).
PowerResult = SequenceResult


def power_weights(log_p: npt.ArrayLike, loglik: npt.ArrayLike, *, alpha: float, jackknife: bool = True) -> np.ndarray:
    """Next-token probabilities over K candidates from their log-probabilities
    (K) and their rollouts' log-likelihoods (K x M): the plug-in
    p(v)^α·mean_r p(y_r)^(α-1), normalised, or its jackknife correction
    (M >= 2), clipped at 0 and renormalised (falling back to the plug-in if
    nothing is left).

    A log-likelihood of -inf is a zero-probability future: it contributes 0 to
    ζ for α > 1 and 1 for α = 1 (for α < 1 its weight would be infinite: a
    ValueError); a candidate with log p = -inf gets weight 0. NaN or +inf in
    either input is a ValueError naming it."""
    lp = np.ascontiguousarray(log_p, dtype=np.float32)
    ll = np.ascontiguousarray(loglik, dtype=np.float64)
    if ll.ndim != 2 or lp.ndim != 1 or ll.shape[0] != lp.size or ll.shape[1] == 0:
        raise ValueError(f"loglik must have shape (K, M) with K = len(log_p) = {lp.size}; got {ll.shape}")
    # alpha: the power samplers' parameter, checked by the sampler table's one check
    return _core.power_weights(lp, ll, v.table_param("power", "alpha", alpha), bool(jackknife))


@from_table("power")
class PowerSampler(SequenceSampler):
    """Token-level power sampling (Algorithm 1 of [POWER]).

    With ``low_temperature_last`` the futures end at max_tokens, as the
    sequences of π do: after the token at step t a rollout runs at most
    min(H, max_tokens - t - 1) tokens, and the last token (no future left)
    is drawn from p^α over the candidates without rollouts. False is for
    benchmarks only: every step runs H-token rollouts, as far from the end of
    a long output, and the law of the last H tokens is then not π.
    Cost per token: K·M rollouts of up to H tokens. Runs through :func:`llama_simplex.generate` (not inside a foreign chain).
    """

    name: ClassVar[str] = "power"
    in_chain: ClassVar[bool] = True  # native(seed, llm=...) is a chain member (form (a))
    PRESETS: ClassVar[Dict[str, Dict[str, Any]]]  # the table's: name -> {parameter: value}

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "PowerSampler":
        return cls(**{**cls.PRESETS[v.choice("preset", name, tuple(cls.PRESETS))], **overrides})

    def native(self, seed: Optional[int] = None, *, llm: Optional[llama_cpp.Llama] = None,
               n_ctx: Optional[int] = None, max_tokens: int = 0) -> _core.NativeSampler:
        """The sampler for a llama.cpp chain (form (a)): it runs its rollouts in a
        context of its own (n_ctx cells; default: what the rollouts need after
        a sequence as long as `llm`'s context) on `llm`'s model and learns the
        sequence through accept() — feed it the prompt tokens first, as
        llama-server does. max_tokens: the output length limit (0: none); with
        it the rollouts stop there, as in :func:`llama_simplex.generate`;
        without it every rollout runs the full horizon, so the law of the last
        H tokens is not exactly π. :func:`llama_simplex.generate` uses a faster
        path that forks the generation's own cache instead. Raises ValueError
        naming n_ctx (or horizon) when the rollout context cannot be made:
        below what K, M, H need, or more memory than the machine has."""
        if llm is None:
            raise NotImplementedError("PowerSampler needs the model for its rollouts: native(llm=...), or run it "
                                      "through llama_simplex.generate()")
        rollout_seed = 0 if seed is None else v.integer("seed", seed, low=0, high=SEED_MAX)
        max_tokens = v.integer("max_tokens", max_tokens, low=0, high=2**31 - 1)
        if n_ctx is None:
            n_ctx, _ = _core.power_context_shape(model_address(llm), self.params(), int(llm.n_ctx()), 0, UBATCH)
        return self._chain_member(llm, seed, rollout_seed, n_ctx, max_tokens)  # n_ctx checked there

    def context_size(self, llm: llama_cpp.Llama, n_prompt: int, max_tokens: int, naive: bool = False) -> tuple:
        """(n_ctx, n_seq) of the rollout context this sampler needs on `llm`'s
        model, checked against the model and the memory available (ValueError
        naming max_tokens, horizon otherwise)."""
        return _core.power_context_shape(model_address(llm), self.params(), n_prompt, max_tokens, UBATCH, naive)

    def rollout_cost(self) -> RolloutCost:
        return RolloutCost(self.horizon, self.candidates * self.rollouts * (self.horizon + 1),
                           "candidates·rollouts·(horizon+1)", self.candidates * self.rollouts * self.horizon,
                           "candidates·rollouts·horizon")

    def run(self, llm: llama_cpp.Llama, prompt_tokens: Sequence[int], max_tokens: int, seed: int,
            progress: bool) -> SequenceResult:
        """Runs in a rollout context of its own on the model, whose rollouts fork the prefix's cells."""
        return self._run(llm, prompt_tokens, max_tokens, seed, progress, naive=False)

    def run_reprefill(self, llm: llama_cpp.Llama, prompt_tokens: Sequence[int], max_tokens: int, seed: int,
                      progress: bool) -> SequenceResult:
        """The benchmark baseline of :meth:`run`: every rollout decodes the
        prefix again instead of forking it (the same draws, more work)."""
        return self._run(llm, prompt_tokens, max_tokens, seed, progress, naive=True)

    def _run(self, llm: llama_cpp.Llama, prompt: Sequence[int], max_tokens: int, seed: int, progress: bool,
             naive: bool) -> SequenceResult:
        ctx = rollout_context(llm, *self.context_size(llm, len(prompt), max_tokens, naive=naive), UBATCH)
        t0 = time.perf_counter()
        tokens, stats = _core.power_generate(ctx, list(prompt), self.params(), max_tokens, seed, True,
                                             _reporter("power", max_tokens, t0) if progress else None, naive)
        return _finish(tokens, stats, t0, progress)


@from_table("mcmc")
class MCMCPowerSampler(SequenceSampler):
    """The MCMC baseline of power sampling [MCMC] (Karan & Du): the output is
    generated in ``stages`` stages, each extended from the low-temperature
    proposal q = softmax(α·logits) and followed by ``steps`` Metropolis-
    Hastings steps that resample the suffix after a uniformly random position
    from q and accept with probability min(1, (p(x')/p(x))^α · q(x)/q(x')).
    The defaults are the paper's setting. Runs through generate()."""

    name: ClassVar[str] = "mcmc"

    def run(self, llm: llama_cpp.Llama, prompt_tokens: Sequence[int], max_tokens: int, seed: int,
            progress: bool) -> SequenceResult:
        n_ctx, n_seq = _core.mcmc_context_shape(model_address(llm), len(prompt_tokens), max_tokens, UBATCH)
        ctx = rollout_context(llm, n_ctx, n_seq, UBATCH)
        t0 = time.perf_counter()

        def report(done: int, proposals: int, accepted: int) -> bool:
            print(f"\r[mcmc] {done}/{max_tokens} tokens, {proposals} proposals, "
                  f"{accepted / max(proposals, 1):.0%} accepted", end="", file=sys.stderr, flush=True)
            return True

        tokens, stats = _core.mcmc_power_generate(ctx, list(prompt_tokens), self.params(), max_tokens, seed, True,
                                                  report if progress else None)
        return _finish(tokens, stats, t0, progress)


@from_table("block_power")
class BlockPowerSampler(SequenceSampler):
    """Block-level power sampling (Algorithm 2 of [POWER], used in the paper's
    experiments): each step emits a block of ``block`` tokens. ``samples``
    candidate blocks are drawn from the model (temperature 1), identical ones
    merged, the ``candidates`` most likely kept; each gets ``rollouts``
    rollouts of up to ``horizon`` tokens (never past max_tokens); the block is
    drawn with weight p(block)^α·ζ̂(block) (jackknifed). The tail (max_tokens
    mod block) is drawn among ``tail_samples`` base samples by p^α alone. A
    block that reaches end-of-sequence stops there and has ζ = 1."""

    name: ClassVar[str] = "block-power"
    PRESETS: ClassVar[Dict[str, Dict[str, Any]]]  # the table's: name -> {parameter: value}

    def _check(self) -> None:
        """The limit between parameters (after the table's checks of each)."""
        if 1 + max(self.samples, self.tail_samples) + self.rollouts > 256:
            raise ValueError(f"samples + rollouts must be <= 255 (llama.cpp's 256 sequences, one for the prefix); "
                             f"got {max(self.samples, self.tail_samples)} + {self.rollouts}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "BlockPowerSampler":
        return cls(**{**cls.PRESETS[v.choice("preset", name, tuple(cls.PRESETS))], **overrides})

    def context_size(self, llm: llama_cpp.Llama, n_prompt: int, max_tokens: int) -> tuple:
        """(n_ctx, n_seq) of the rollout context this sampler needs on `llm`'s
        model, checked as :meth:`PowerSampler.context_size` does."""
        return _core.block_context_shape(model_address(llm), self.params(), n_prompt, max_tokens, UBATCH)

    def run(self, llm: llama_cpp.Llama, prompt_tokens: Sequence[int], max_tokens: int, seed: int,
            progress: bool) -> SequenceResult:
        ctx = rollout_context(llm, *self.context_size(llm, len(prompt_tokens), max_tokens), UBATCH)
        t0 = time.perf_counter()
        tokens, stats = _core.block_power_generate(ctx, list(prompt_tokens), self.params(), max_tokens, seed,
                                                   True, _reporter("block-power", max_tokens, t0) if progress else None)
        return _finish(tokens, stats, t0, progress)


def run_power(llm: llama_cpp.Llama, prompt: Sequence[int], sampler: SequenceSampler, max_tokens: int,
              seed: int, progress: bool, naive: bool = False) -> SequenceResult:
    """``sampler.run(...)``; naive=True (a PowerSampler only) is the benchmark
    baseline, :meth:`PowerSampler.run_reprefill`."""
    if naive:
        reprefill = getattr(sampler, "run_reprefill", None)
        if reprefill is None:
            raise TypeError(f"naive: {type(sampler).__name__} has no re-prefill baseline (PowerSampler has)")
        return reprefill(llm, prompt, max_tokens, seed, progress)
    return sampler.run(llm, prompt, max_tokens, seed, progress)


def _finish(tokens: Sequence[int], stats: Dict[str, int], t0: float, progress: bool) -> SequenceResult:
    if progress:
        print(file=sys.stderr)  # ends the progress line
    return SequenceResult(list(tokens), dict(stats), time.perf_counter() - t0)


def _reporter(label: str, max_tokens: int, t0: float):
    def report(done: int, rollouts: int, rollout_tokens: int) -> bool:
        dt = max(time.perf_counter() - t0, 1e-9)
        print(f"\r[{label}] {done}/{max_tokens} tokens, {rollouts / dt:.1f} rollouts/s, "
              f"{rollout_tokens / dt:.0f} rollout tokens/s", end="", file=sys.stderr, flush=True)
        return True
    return report
