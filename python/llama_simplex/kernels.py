"""The simplex decoders as pure functions on numpy arrays (no model needed).

Each returns ``(q, support)``: q is a float32 distribution over the whole
vocabulary with exact zeros outside the support, and support the token ids
where q may be positive, in the order the kernel left them (sorted by
decreasing q for greedy, top-k and top-p). They run the same C++ code as the
samplers. NaN logits, or no finite logit, raise ValueError.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
import numpy.typing as npt

from . import _core
from . import _validate as v

__all__ = ["greedy", "softmax", "top_k", "top_p", "min_p", "sparsemax"]

Result = Tuple[npt.NDArray[np.float32], npt.NDArray[np.int32]]


def _logits(logits: npt.ArrayLike) -> npt.NDArray[np.float32]:
    a = np.ascontiguousarray(logits, dtype=np.float32)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"logits must be a non-empty 1-D array, got shape {a.shape}")
    return a


def greedy(logits: npt.ArrayLike) -> Result:
    """One-hot on the highest logit (lowest token id on ties)."""
    return _core.greedy(_logits(logits))


def softmax(logits: npt.ArrayLike, *, temperature: float = 1.0) -> Result:
    """softmax(logits / temperature); temperature 0 is greedy."""
    return _core.softmax(_logits(logits), v.real("temperature", temperature, low=0.0))


def top_k(logits: npt.ArrayLike, *, k: int, temperature: float = 1.0) -> Result:
    """softmax(logits / temperature) over the k highest logits (k = 0: all)."""
    return _core.top_k(_logits(logits), v.integer("k", k, low=0), v.real("temperature", temperature, low=0.0))


def top_p(logits: npt.ArrayLike, *, p: float, temperature: float = 1.0, order: str = "model") -> Result:
    """Nucleus of mass p (chosen by softmax(logits), or by softmax(logits / T)
    with ``order="temperature"``), then softmax(logits / temperature) over it."""
    o = v.choice("order", order, ("model", "temperature"))
    return _core.top_p(_logits(logits), v.real("p", p, low=0.0, high=1.0),
                       v.real("temperature", temperature, low=0.0), getattr(_core.NucleusOrder, o))


def min_p(logits: npt.ArrayLike, *, p_min: float, temperature: float = 1.0) -> Result:
    """softmax(logits / temperature) over {v : p(v) >= p_min * max p}."""
    return _core.min_p(_logits(logits), v.real("p_min", p_min, low=0.0, high=1.0),
                       v.real("temperature", temperature, low=0.0))


def sparsemax(logits: npt.ArrayLike, *, temperature: float = 1.0) -> Result:
    """[logits / temperature - tau]_+ with tau making it sum to 1 (O(V) expected)."""
    return _core.sparsemax(_logits(logits), v.real("temperature", temperature, low=0.0))
