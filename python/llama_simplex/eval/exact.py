"""Exact targets on models small enough to enumerate: the law of two-token
completions under plain decoding, its power distribution π ∝ p^α, and the
law of token-wise low-temperature sampling. Shared by the tests and by
`llama-simplex eval exactness`."""

from __future__ import annotations

from typing import List, Sequence, Tuple

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


def two_step_logprobs(llm: llama_cpp.Llama, prompt: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """log p(x1) and log p(x2 | x1) for every x1."""
    p1 = next_logprobs(llm, prompt)
    p2 = np.stack([next_logprobs(llm, list(prompt) + [x]) for x in range(p1.size)])
    return p1, p2


def targets(p1: np.ndarray, p2: np.ndarray, alpha: float, eos: int) -> Tuple[List[Outcome], np.ndarray, np.ndarray]:
    """The outcomes ((eos,) or (x1, x2)), π ∝ p^α over them, and the law of
    token-wise sampling at temperature 1/α."""
    n = p1.size
    outcomes: List[Outcome] = []
    logp = []
    for x1 in range(n):
        if x1 == eos:
            outcomes.append((x1,))
            logp.append(p1[x1])
        else:
            for x2 in range(n):
                outcomes.append((x1, x2))
                logp.append(p1[x1] + p2[x1, x2])
    logp_a = alpha * np.array(logp)
    pi = np.exp(logp_a - logp_a.max())
    pi /= pi.sum()
    q1 = np.exp(alpha * p1 - np.max(alpha * p1))
    q1 /= q1.sum()
    q2 = np.exp(alpha * p2 - np.max(alpha * p2, axis=1, keepdims=True))
    q2 /= q2.sum(1, keepdims=True)
    low = np.array([q1[o[0]] * (q2[o[0], o[1]] if len(o) == 2 else 1.0) for o in outcomes])
    return outcomes, pi, low


def outcome(tokens: Sequence[int], eos: int) -> Outcome:
    """The outcome of a two-token generation (end-of-sequence is not returned as a token)."""
    if len(tokens) == 2:
        return tuple(tokens)
    if len(tokens) == 1:
        return (tokens[0], eos)
    return (eos,)


def tv(a: np.ndarray, b: np.ndarray) -> float:
    return 0.5 * float(np.abs(np.asarray(a) - np.asarray(b)).sum())


def tv_bound(pi: np.ndarray, n: int) -> float:
    """E TV(empirical of n draws, π) <= ½ Σ sqrt(π(1-π)/n)."""
    return 0.5 * float(np.sqrt(pi * (1 - pi) / n).sum())
