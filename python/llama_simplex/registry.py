"""The samplers selectable by name (CLI, ``serve``, configuration files): one
table, built here from the classes' own ``name``, so that no module writes
into another's at import time."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict

from . import _core
from . import _validate as v
from .power import BlockPowerSampler, MCMCPowerSampler, PowerSampler
from .samplers import BestOfK, Greedy, MinP, Objective, Sampler, Softmax, Sparsemax, TopK, TopP
from .smc import SMCPowerSampler

__all__ = ["SAMPLERS", "python_name", "sampler_from_name"]

# Decoders selectable by name, in the order `llama-simplex samplers` lists them.
SAMPLERS: Dict[str, type] = {
    cls.name: cls for cls in (Greedy, Softmax, TopK, TopP, MinP, Sparsemax, BestOfK, Objective,
                              PowerSampler, BlockPowerSampler, MCMCPowerSampler, SMCPowerSampler)
}


def python_name(name: str) -> str:
    """The key of :data:`SAMPLERS` for a canonical name or alias of the sampler
    table (``_core.sampler_specs()``), e.g. 'best_of_k' or 'bok' -> 'bok'."""
    for spec in _core.sampler_specs():
        names = (spec["name"], *spec["aliases"])
        if name in names:
            return next((n for n in names if n in SAMPLERS), name)
    return name


def sampler_from_name(name: str, **params: Any) -> Sampler:
    """Builds a decoder from its name or any alias (see :data:`SAMPLERS` and
    ``llama-simplex samplers``) and keyword parameters; ``preset=`` names one
    of its presets (the keywords given with it override the preset's values),
    as llama-server's sampler_params take it."""
    name = python_name(name)
    v.choice("sampler", name, tuple(SAMPLERS))
    cls = SAMPLERS[name]
    if "preset" in params and getattr(cls, "PRESETS", None):
        preset = params.pop("preset")
        return cls.preset(preset, **params)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(params) - known
    if unknown:
        raise ValueError(f"sampler {name!r} takes {sorted(known) or 'no parameters'}; got unknown {sorted(unknown)}")
    return cls(**params)
