"""Exact targets on models small enough to enumerate: the law of completions
of up to T tokens under plain decoding, its power distribution π ∝ p^α, the
law of token-wise low-temperature sampling, and the sampling noise of an
exact sampler at N draws. Shared by the tests and by
`llama-simplex eval exactness`."""

from __future__ import annotations

import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import llama_cpp
import numpy as np

Outcome = Tuple[int, ...]


def next_logprobs(llm: llama_cpp.Llama, ids: Sequence[int]) -> np.ndarray:
    """log p(· | ids) by plain decoding, in float64."""
    n = llm.n_vocab()
    llm.reset()
    llm.eval(list(ids))
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n,)).astype(np.float64)
    return logits - (logits.max() + np.log(np.exp(logits - logits.max()).sum()))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    return x - (x.max() + np.log(np.exp(x - x.max()).sum()))


class Completions:
    """Every completion of `prompt` with exactly `length` tokens, or fewer
    ending in end-of-sequence (the outcome then ends with `eos`), with the
    next-token log-probabilities after every prefix. Costs one decode per
    prefix: Σ_{i<length} (V-1)^i."""

    def __init__(self, llm: llama_cpp.Llama, prompt: Sequence[int], length: int, eos: int) -> None:
        if length < 1:
            raise ValueError(f"length: must be >= 1, got {length}")
        self.length, self.eos, self.prompt = length, eos, list(prompt)
        self.next_lp: Dict[Outcome, np.ndarray] = {}
        self.outcomes: List[Outcome] = []
        stack: List[Outcome] = [()]
        while stack:
            prefix = stack.pop()
            lp = self.next_lp[prefix] = next_logprobs(llm, self.prompt + list(prefix))
            for x in range(lp.size):
                if x == eos or len(prefix) + 1 == length:
                    self.outcomes.append(prefix + (x,))
                else:
                    stack.append(prefix + (x,))
        self.outcomes.sort()
        self.index = {o: i for i, o in enumerate(self.outcomes)}

    def _law(self, step: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        logs = {prefix: step(lp) for prefix, lp in self.next_lp.items()}
        return np.array([sum(logs[o[:i]][o[i]] for i in range(len(o))) for o in self.outcomes])

    def logp(self) -> np.ndarray:
        """log p(outcome) under the model at temperature 1."""
        return self._law(lambda lp: lp)

    def power(self, alpha: float) -> np.ndarray:
        """π ∝ p^α over the outcomes."""
        a = alpha * self.logp()
        pi = np.exp(a - a.max())
        return pi / pi.sum()

    def low_temperature(self, alpha: float) -> np.ndarray:
        """The law of token-wise sampling from softmax(α·ℓ_t) (temperature 1/α)."""
        return np.exp(self._law(lambda lp: _log_softmax(alpha * lp)))

    def outcome(self, tokens: Sequence[int]) -> Outcome:
        """The outcome of a generation of at most `length` tokens that stops at
        end-of-sequence without returning it."""
        return tuple(tokens) if len(tokens) == self.length else tuple(tokens) + (self.eos,)


def tv(a: np.ndarray, b: np.ndarray) -> float:
    return 0.5 * float(np.abs(np.asarray(a) - np.asarray(b)).sum())


def tv_noise_quantile(law: np.ndarray, n: int, q: float = 0.99, reps: int = 2000, seed: int = 0) -> float:
    """The q-quantile of TV(empirical law of n exact draws, law): what an
    exact sampler's TV stays under with probability q at n draws (simulated
    with a fixed seed, `reps` repetitions)."""
    rng = np.random.default_rng(seed)
    p = np.asarray(law, dtype=np.float64)
    p = p / p.sum()
    counts = rng.multinomial(n, p, size=reps)
    return float(np.quantile(0.5 * np.abs(counts / n - p).sum(axis=1), q))


def empirical(llm: llama_cpp.Llama, sampler, space: Completions, n: int, *, first_seed: int = 0,
              label: Optional[str] = None) -> Tuple[np.ndarray, Dict[str, float]]:
    """The empirical law of n generations (seeds first_seed..) of at most
    space.length tokens with `sampler`, and the mean of each numeric stat the
    generations report (rollout tokens, ...) with the seconds per draw."""
    from ..generation import generate
    counts = np.zeros(len(space.outcomes))
    totals: Dict[str, float] = {}
    t0 = time.perf_counter()
    for i in range(n):
        g = generate(llm, space.prompt, sampler, max_tokens=space.length, seed=first_seed + i, add_special=False,
                     progress=False)
        counts[space.index[space.outcome(g.tokens)]] += 1
        for key, value in (getattr(g, "stats", None) or {}).items():
            totals[key] = totals.get(key, 0.0) + float(value)
        if label is not None and ((i + 1) % 100 == 0 or i + 1 == n):
            rate = (i + 1) / max(time.perf_counter() - t0, 1e-9)
            print(f"\r[eval] {label}: {i + 1}/{n} samples ({rate:.0f}/s)", end="" if i + 1 < n else "\n",
                  file=sys.stderr, flush=True)
    stats = {key: value / n for key, value in totals.items()}
    stats["seconds_per_draw"] = (time.perf_counter() - t0) / n
    return counts / n, stats
