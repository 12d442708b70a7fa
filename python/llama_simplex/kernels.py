"""The simplex decoders as pure functions on numpy arrays (no model needed).

Each returns ``(q, support)``: q is a float32 distribution over the whole
vocabulary with exact zeros outside the support, and support the token ids
where q may be positive, in the order the kernel left them (sorted by
decreasing q for greedy, top-k and top-p). They run the samplers themselves
(:func:`decode`), so they take their sampler class's parameters. NaN or +inf logits, or no finite logit, raise ValueError.

Every kernel computes in shifted coordinates ((logits - max) / temperature),
so q is finite and sums to 1 at any logit scale and for every temperature > 0
down to the smallest float32 subnormal (1.4e-45; temperatures are float32s,
so a smaller positive one is a ValueError). As temperature -> 0 q tends to
the one-hot on the argmax; exactly tied maxima share the mass equally at
every temperature > 0 (among those the support keeps: top-k and top-p keep
lower ids first), and temperature 0 is greedy (the lowest id). top-p's p and
min-p's p_min are used in double precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np
import numpy.typing as npt

from . import _core, samplers
from . import _validate as v

__all__ = ["greedy", "softmax", "top_k", "top_p", "min_p", "sparsemax", "solve", "gradient", "coverage_weights",
           "decode", "Solution"]

Result = Tuple[npt.NDArray[np.float32], npt.NDArray[np.int32]]


def _array(name: str, x: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """x as contiguous float32; a scalar or None is refused, not made a 1-element array."""
    try:
        a = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be a 1-D array of numbers, got {type(x).__name__} ({e})") from None
    return np.ascontiguousarray(a) if a.ndim else a


def _logits(logits: npt.ArrayLike) -> npt.NDArray[np.float32]:
    a = _array("logits", logits)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"logits must be a non-empty 1-D array, got shape {a.shape}")
    return a


def _decoder(cls_name: str, logits: npt.ArrayLike, params: Dict[str, Any]) -> Result:
    """The decoder of sampler class `cls_name` with these parameters (its class's:
    the sampler table's names, defaults, ranges and messages) on the logits."""
    return decode(logits, getattr(samplers, cls_name)(**params))


def greedy(logits: npt.ArrayLike) -> Result:
    """One-hot on the highest logit (lowest token id on ties)."""
    return _decoder("Greedy", logits, {})


def softmax(logits: npt.ArrayLike, **params: Any) -> Result:
    """softmax(logits / temperature); temperature 0 is greedy. params: :class:`~llama_simplex.Softmax`'s."""
    return _decoder("Softmax", logits, params)


def top_k(logits: npt.ArrayLike, **params: Any) -> Result:
    """softmax(logits / temperature) over the k highest logits (k = 0: all).
    params: :class:`~llama_simplex.TopK`'s."""
    return _decoder("TopK", logits, params)


def top_p(logits: npt.ArrayLike, **params: Any) -> Result:
    """Nucleus of mass p (chosen by softmax(logits), or by softmax(logits / T)
    with ``order="temperature"``), then softmax(logits / temperature) over it.
    params: :class:`~llama_simplex.TopP`'s."""
    return _decoder("TopP", logits, params)


def min_p(logits: npt.ArrayLike, **params: Any) -> Result:
    """softmax(logits / temperature) over {v : p(v) >= p_min * max p}.
    params: :class:`~llama_simplex.MinP`'s."""
    return _decoder("MinP", logits, params)


def sparsemax(logits: npt.ArrayLike, **params: Any) -> Result:
    """[logits / temperature - tau]_+ with tau making it sum to 1 (O(V) expected).
    params: :class:`~llama_simplex.Sparsemax`'s."""
    return _decoder("Sparsemax", logits, params)


@dataclass(frozen=True)
class Solution:
    """The solver's answer: q on the candidates, the steps taken, the final
    optimality gap max g - <q, g>, and how it ended ('closed_form',
    'converged', 'budget', or 'fallback' when a non-finite value appeared and
    q is the reference distribution)."""

    q: npt.NDArray[np.float32]
    steps: int
    gap: float
    status: str


def _objective(params: Dict[str, Any]) -> Dict[str, Any]:
    """The objective sampler's parameters as the solver takes them (those of the
    table's "kernel" surface), each checked by the table's one check (TypeError
    / ValueError with its message); the others are refused by _core."""
    _core.check_params("objective", params)
    return params


# The coverage weights' kinds: the objective sampler's `weights` choices (the sampler table's).
_WEIGHTS = tuple(next(p["choices"] for s in _core.sampler_specs() if s["name"] == "objective"
                      for p in s["params"] if p["name"] == "weights"))


def _vector(name: str, x: npt.ArrayLike, n: Optional[int] = None) -> npt.NDArray[np.float32]:
    a = _array(name, x)
    if a.ndim != 1 or a.size == 0 or (n is not None and a.size != n):
        raise ValueError(f"{name} must be a non-empty 1-D array" + (f" of length {n}" if n else "") + f", got shape {a.shape}")
    return a


def solve(s: npt.ArrayLike, log_r: npt.ArrayLike, w: Optional[npt.ArrayLike] = None, *, steps: int = 5,
          **objective: Any) -> Solution:
    """Solves max_q <q, s> - lam [entropy Σ q log q + kl KL(q‖r) + l2 ½‖q‖²] + lam beta U_K(q)
    over the candidates (the arrays' entries), from q0 = r ∝ exp(log_r).

    objective: the :class:`~llama_simplex.Objective` sampler's parameters the
    solver reads (the sampler table's "kernel" surface: the weights lam,
    entropy, kl, l2, beta, k_samples and the step's step_size, tol), with the
    table's defaults and ranges. steps: the budget, in [0, 2**31 - 1] (the
    sampler's own steps stop at 1000 per token).

    Candidates with log_r = -inf are outside the support (q = 0); log_r need
    not be normalised. ValueError for NaN, or when no log_r is finite."""
    s_ = _vector("s", s)
    r_ = _vector("log_r", log_r, s_.size)
    w_ = None if w is None else _vector("w", w, s_.size)
    if np.any(np.isnan(s_)):
        raise ValueError("s must not contain NaN")
    if np.any(np.isnan(r_)) or np.any(r_ == np.inf) or not np.any(np.isfinite(r_)):
        raise ValueError("log_r must be finite or -inf, with at least one finite entry (the support)")
    if w_ is not None and np.any(~(w_ >= 0)):
        raise ValueError("w must be >= 0 everywhere")
    # steps: the solver itself takes more than the sampler's per-token budget (the table's 1000)
    max_steps = v.integer("steps", steps, low=0, limit=v.INT32_MAX)
    q, n_steps, gap, status = _core.solve_simplex(s_, r_, w_, _objective(objective), max_steps)
    return Solution(q, n_steps, gap, status.name)


def gradient(s: npt.ArrayLike, log_r: npt.ArrayLike, q: npt.ArrayLike, w: Optional[npt.ArrayLike] = None,
             **objective: Any) -> npt.NDArray[np.float32]:
    """The objective's gradient g at q (what the KKT conditions are stated in);
    objective as for :func:`solve` (step_size and tol do not enter it).

    q must be a distribution over the candidates: finite, >= 0, summing to 1
    within n float32 roundings (n * 2**-24); ValueError otherwise."""
    s_ = _vector("s", s)
    q_ = _vector("q", q, s_.size)
    total = float(np.sum(q_, dtype=np.float64))
    if not np.all(q_ >= 0) or not np.all(np.isfinite(q_)) or abs(total - 1.0) > q_.size * 2.0**-24:
        raise ValueError(f"q must be a distribution (finite, >= 0, summing to 1 within {q_.size} * 2**-24), "
                         f"got sum {total!r}" + (" with NaN, inf or negative entries" if not np.all(q_ >= 0) or
                                                 not np.all(np.isfinite(q_)) else ""))
    return _core.simplex_gradient(s_, _vector("log_r", log_r, s_.size), None if w is None else _vector("w", w, s_.size),
                                  _objective(objective), q_)


def coverage_weights(log_r: npt.ArrayLike, *, kind: str = "top-m", m: int = 8) -> npt.NDArray[np.float32]:
    """Coverage weights on the top-m tokens of r: 'top-m' (1), 'rank'
    (1 / (1 + rank)) or 'gap' (r_v / max r); 0 elsewhere. log_r must not
    contain NaN or +inf (ValueError); -inf entries get weight 0."""
    r_ = _vector("log_r", log_r)
    if np.any(np.isnan(r_)) or np.any(r_ == np.inf):
        raise ValueError("log_r must not contain NaN or +inf (the logits of the reference distribution)")
    # kind takes the objective's `weights` choices (the table's); m is the objective's m
    kind = v.choice("kind", kind, _WEIGHTS)
    return _core.coverage_weights(r_, kind, v.table_param("objective", "m", m))


def decode(logits: npt.ArrayLike, sampler: samplers.Sampler) -> Result:
    """Any sampler's q on these logits (token ids 0..n-1), through the same
    native llama_sampler that generation uses: (q over the vocabulary, support)."""
    if not isinstance(sampler, samplers.Sampler):
        raise TypeError(f"sampler must be a llama_simplex Sampler, got {type(sampler).__name__}")
    a = _logits(logits)
    ids, _lg, p, _sel, _sorted = sampler.native().apply(a)
    q = np.zeros(a.size, dtype=np.float32)
    q[ids] = p
    return q, ids
