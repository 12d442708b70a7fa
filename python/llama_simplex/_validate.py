"""Parameter checks shared by every public constructor: errors name the
parameter and the allowed range, and nothing is silently clamped."""

from __future__ import annotations

import math
from numbers import Integral, Real

from . import _core

# The C ranges the native code takes: a value outside is refused here, by
# name, instead of reaching pybind11 (which would answer "incompatible
# function arguments") or ctypes (which would silently wrap it).
INT32_MAX = 2**31 - 1
UINT32_MAX = 2**32 - 1
# The most solver steps an objective sampler may take per token (the C API's
# LLAMA_SIMPLEX_MAX_STEPS): each step is O(vocabulary), a sort with an l2 term.
MAX_STEPS = 1000


def integer(name: str, value: object, *, low: int | None = None, high: int | None = None,
            limit: int | None = None) -> int:
    """An integer in [low, high]; `limit` is the largest value the C type it
    goes to can hold (INT32_MAX, UINT32_MAX), checked after the range."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    _check_range(name, value, low, high)
    if limit is not None and value > limit:
        raise ValueError(f"{name} must be <= {limit}, got {value!r}")
    return value


def real(name: str, value: object, *, low: float | None = None, high: float | None = None,
         low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low_open and low is not None and value <= low:
        raise ValueError(f"{name} must be > {low}, got {value!r}")
    _check_range(name, value, low, high)
    return value


def choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return str(value)


def _check_range(name: str, value: float, low: float | None, high: float | None) -> None:
    if low is not None and high is not None and not (low <= value <= high):
        raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")


# The native code keeps most real parameters as float32: a value it cannot
# hold would silently become inf, or 0 (a temperature of 0 is greedy).
FLOAT32_MAX = 3.4028234663852886e38
FLOAT32_TRUE_MIN = 1.401298464324817e-45  # the smallest positive (subnormal) float32


def real32(name: str, value: object, *, low: float | None = None, high: float | None = None,
           low_open: bool = False) -> float:
    """real(), and representable as a float32: |value| <= FLOAT32_MAX, and a
    nonzero value not below FLOAT32_TRUE_MIN in magnitude."""
    value = real(name, value, low=low, high=high, low_open=low_open)
    if abs(value) > FLOAT32_MAX:
        raise ValueError(f"{name} must be at most {FLOAT32_MAX!r} in magnitude (a float32), got {value!r}")
    if value != 0.0 and abs(value) < FLOAT32_TRUE_MIN:
        zero = "" if low_open and low == 0.0 else "0 or "
        raise ValueError(f"{name} must be {zero}at least {FLOAT32_TRUE_MIN!r} in magnitude (the smallest float32), "
                         f"got {value!r}")
    return value


def table_param(sampler: str, name: str, value: object) -> object:
    """`value` of parameter `name` of `sampler` in the sampler table
    (``_core.sampler_specs()``), checked by the table's one C++ check
    (``_core.check_params``, the C API's and llama-server's): TypeError or
    ValueError with the C API's message, ``name: must be <range>, got <value>``.
    Python only hands C a Python number (a numpy scalar becomes one); returns
    the value as the field keeps it: an int, a float (not rounded to float32),
    a bool or a str."""
    if not isinstance(value, bool):
        if isinstance(value, Integral):
            value = int(value)
        elif isinstance(value, Real):
            value = float(value)
    checked = _core.check_params(sampler, {name: value})[name]
    if isinstance(checked, float):
        return float(value)  # type: ignore[arg-type]
    if isinstance(checked, tuple):
        return value  # support: the spec as given
    return checked
