"""Parameter checks shared by every public constructor: errors name the
parameter and the allowed range, and nothing is silently clamped.

A sampler table parameter is checked once, by the table's C++ check
(:func:`table_param`, the C API's and llama-server's); the helpers above it
check the arguments that are not in the table (a call's max_tokens, seed,
n_ctx, a server limit)."""

from __future__ import annotations

import math
from numbers import Integral, Real

from . import _core

# The C ranges the native code takes: a value outside is refused here, by
# name, instead of reaching pybind11 (which would answer "incompatible
# function arguments") or ctypes (which would silently wrap it).
INT32_MAX = 2**31 - 1


def integer(name: str, value: object, *, low: int | None = None, high: int | None = None,
            limit: int | None = None) -> int:
    """An integer in [low, high]; `limit` is the largest value the C type it
    goes to can hold (e.g. INT32_MAX), checked after the range."""
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
