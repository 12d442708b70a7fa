"""Sampler classes: small frozen records of keyword parameters, validated on
construction, each building a native ``llama_sampler`` on demand.

A sampler writes the distribution q of its decoder into the candidate array
(tokens outside its support are dropped, as llama.cpp's truncation samplers
drop them); the final draw is done by :class:`Dist` (seeded), which
:func:`llama_simplex.generate` appends for you.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, Iterator, Optional, Tuple

from . import _core
from . import _validate as v

__all__ = [
    "Sampler", "Greedy", "Softmax", "TopK", "TopP", "MinP", "Sparsemax", "Dist", "Chain",
    "SAMPLERS", "sampler_from_name",
]

SEED_MAX = 2**32 - 2  # 2**32 - 1 is llama.cpp's "pick a random seed"


class Sampler:
    """Base class: a decoder that can become a native llama.cpp sampler."""

    name: ClassVar[str] = ""

    def _make(self) -> _core.NativeSampler:
        raise NotImplementedError

    def native(self, seed: Optional[int] = None) -> _core.NativeSampler:
        """A new native llama_sampler with these parameters (owned by the caller).

        With a seed, the sampler also draws the token from the q it writes
        (what a ``Dist(seed)`` after it would do, without a second softmax).
        """
        native = self._make()
        if seed is not None and not isinstance(self, Dist):
            native.enable_draw(v.integer("seed", seed, low=0, high=SEED_MAX))
        return native

    def members(self) -> Tuple["Sampler", ...]:
        """The samplers this one is made of, in application order."""
        return (self,)

    def params(self) -> Dict[str, Any]:
        """The parameters as keyword arguments."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class Greedy(Sampler):
    """All mass on the highest logit (λ = 0); ties go to the lowest token id."""

    name: ClassVar[str] = "greedy"

    def _make(self) -> _core.NativeSampler:
        return _core.make_greedy()


@dataclass(frozen=True)
class Softmax(Sampler):
    """q = softmax(logits / temperature) (negative-entropy regulariser, λ = temperature).

    temperature = 0 is greedy decoding.
    """

    temperature: float = 1.0
    name: ClassVar[str] = "softmax"

    def __post_init__(self) -> None:
        object.__setattr__(self, "temperature", v.real("temperature", self.temperature, low=0.0))

    def _make(self) -> _core.NativeSampler:
        return _core.make_softmax(self.temperature)


@dataclass(frozen=True)
class TopK(Sampler):
    """softmax(logits / temperature) over the k highest logits (lower id wins ties).

    k = 0 keeps every token, as in llama.cpp.
    """

    k: int = 40
    temperature: float = 1.0
    name: ClassVar[str] = "top-k"

    def __post_init__(self) -> None:
        object.__setattr__(self, "k", v.integer("k", self.k, low=0))
        object.__setattr__(self, "temperature", v.real("temperature", self.temperature, low=0.0))

    def _make(self) -> _core.NativeSampler:
        return _core.make_top_k(self.k, self.temperature)


@dataclass(frozen=True)
class TopP(Sampler):
    """Nucleus sampling: softmax(logits / temperature) over the smallest set of
    tokens, taken in order of probability, whose mass reaches p.

    ``order="model"`` (default, the paper): the nucleus is chosen by the model
    distribution softmax(logits), temperature is applied after.
    ``order="temperature"`` (llama.cpp's ``temp -> top_p`` chain): the nucleus
    is chosen by softmax(logits / temperature).
    """

    p: float = 0.9
    temperature: float = 1.0
    order: str = "model"
    name: ClassVar[str] = "top-p"

    def __post_init__(self) -> None:
        object.__setattr__(self, "p", v.real("p", self.p, low=0.0, high=1.0))
        object.__setattr__(self, "temperature", v.real("temperature", self.temperature, low=0.0))
        object.__setattr__(self, "order", v.choice("order", self.order, ("model", "temperature")))

    def _make(self) -> _core.NativeSampler:
        return _core.make_top_p(self.p, self.temperature, getattr(_core.NucleusOrder, self.order))


@dataclass(frozen=True)
class MinP(Sampler):
    """softmax(logits / temperature) over {v : p(v) >= p_min * max p}, p = softmax(logits)."""

    p_min: float = 0.05
    temperature: float = 1.0
    name: ClassVar[str] = "min-p"

    def __post_init__(self) -> None:
        object.__setattr__(self, "p_min", v.real("p_min", self.p_min, low=0.0, high=1.0))
        object.__setattr__(self, "temperature", v.real("temperature", self.temperature, low=0.0))

    def _make(self) -> _core.NativeSampler:
        return _core.make_min_p(self.p_min, self.temperature)


@dataclass(frozen=True)
class Sparsemax(Sampler):
    """Euclidean projection of logits / temperature onto the simplex:
    q = [logits / temperature - tau]_+ (½‖q‖² regulariser), with exact zeros.
    """

    temperature: float = 1.0
    name: ClassVar[str] = "sparsemax"

    def __post_init__(self) -> None:
        object.__setattr__(self, "temperature", v.real("temperature", self.temperature, low=0.0))

    def _make(self) -> _core.NativeSampler:
        return _core.make_sparsemax(self.temperature)


@dataclass(frozen=True)
class Dist(Sampler):
    """Final draw from softmax(logits) of what the chain left, with a seeded RNG."""

    seed: int = 0
    name: ClassVar[str] = "dist"

    def __post_init__(self) -> None:
        object.__setattr__(self, "seed", v.integer("seed", self.seed, low=0, high=SEED_MAX))

    def _make(self) -> _core.NativeSampler:
        return _core.make_dist(self.seed)


@dataclass(frozen=True, init=False)
class Chain(Sampler):
    """Samplers applied one after another, like a llama.cpp sampler chain."""

    samplers: Tuple[Sampler, ...] = field(default=())
    name: ClassVar[str] = "chain"

    def __init__(self, *samplers: Sampler) -> None:
        flat: list[Sampler] = []
        for i, s in enumerate(samplers):
            if not isinstance(s, Sampler):
                raise TypeError(f"samplers[{i}] must be a llama_simplex Sampler, got {type(s).__name__}")
            flat.extend(s.members())
        if not flat:
            raise ValueError("samplers must hold at least one sampler")
        object.__setattr__(self, "samplers", tuple(flat))

    def members(self) -> Tuple[Sampler, ...]:
        return self.samplers

    def __iter__(self) -> Iterator[Sampler]:
        return iter(self.samplers)

    def _make(self) -> _core.NativeSampler:
        return _core.make_chain([s.native() for s in self.samplers])


# Decoders selectable by name (CLI, configuration files).
SAMPLERS: Dict[str, type] = {
    cls.name: cls for cls in (Greedy, Softmax, TopK, TopP, MinP, Sparsemax)
}


def sampler_from_name(name: str, **params: Any) -> Sampler:
    """Builds a decoder from its name (see :data:`SAMPLERS`) and keyword parameters."""
    v.choice("sampler", name, tuple(SAMPLERS))
    cls = SAMPLERS[name]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(params) - known
    if unknown:
        raise ValueError(f"sampler {name!r} takes {sorted(known) or 'no parameters'}; got unknown {sorted(unknown)}")
    return cls(**params)
