"""Sampler classes: small frozen records of keyword parameters, validated on
construction, each building a native ``llama_sampler`` on demand.

A sampler writes the distribution q of its decoder into the candidate array
(tokens outside its support are dropped, as llama.cpp's truncation samplers
drop them). The token is drawn with the seed of the call: ``native(seed)``
(what :func:`llama_simplex.generate`, :func:`llama_simplex.sample_k` and
:func:`llama_simplex.create_completion` use) makes a sampler, or a
:class:`Chain`, draw from the q it leaves.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, Iterator, Optional, Tuple

from . import _core
from . import _validate as v

__all__ = [
    "Sampler", "Greedy", "Softmax", "TopK", "TopP", "MinP", "Sparsemax", "BestOfK", "Objective", "Dist", "Chain",
]

SEED_MAX = 2**32 - 2  # 2**32 - 1 is llama.cpp's "pick a random seed"


class Sampler:
    """Base class: a decoder that can become a native llama.cpp sampler."""

    name: ClassVar[str] = ""

    def _make(self) -> _core.NativeSampler:
        raise NotImplementedError

    def native(self, seed: Optional[int] = None) -> _core.NativeSampler:
        """A new native llama_sampler with these parameters (owned by the caller).

        With a seed it always selects a token, drawn with that seed: a decoder
        draws from the q it writes (what a ``Dist(seed)`` after it would do,
        without a second softmax); a :class:`Dist`, or any Dist inside a
        :class:`Chain`, takes the seed instead of its own; a Chain's last
        member draws from what the chain left. Without a seed it writes q
        only, and only a Dist (with its own seed) selects.
        """
        if seed is not None:
            seed = v.integer("seed", seed, low=0, high=SEED_MAX)
        native = self._make()
        if seed is not None and not native.ensure_draw(seed):
            raise TypeError(f"{type(self).__name__}: its native sampler cannot draw a token")
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
        object.__setattr__(self, "temperature", v.real32("temperature", self.temperature, low=0.0))

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
        object.__setattr__(self, "k", v.integer("k", self.k, low=0, limit=v.INT32_MAX))
        object.__setattr__(self, "temperature", v.real32("temperature", self.temperature, low=0.0))

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
        object.__setattr__(self, "temperature", v.real32("temperature", self.temperature, low=0.0))
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
        object.__setattr__(self, "temperature", v.real32("temperature", self.temperature, low=0.0))

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
        object.__setattr__(self, "temperature", v.real32("temperature", self.temperature, low=0.0))

    def _make(self) -> _core.NativeSampler:
        return _core.make_sparsemax(self.temperature)


def _support(spec: str) -> Tuple["_core.SupportKind", float]:
    """Parses a support spec: 'full', 'top-k:K', 'top-p:P' or 'min-p:P'."""
    if spec == "full":
        return _core.SupportKind.full, 0.0
    kind, _, value = str(spec).partition(":")
    try:
        if kind == "top-k":
            # support_value is a float32: k up to 2**24 is exact.
            return _core.SupportKind.top_k, float(v.integer("support top-k", int(value), low=1, high=2**24))
        if kind == "top-p":
            return _core.SupportKind.top_p, v.real("support top-p", float(value), low=0.0, high=1.0)
        if kind == "min-p":
            return _core.SupportKind.min_p, v.real("support min-p", float(value), low=0.0, high=1.0)
    except ValueError as e:
        raise ValueError(f"support {spec!r}: {e}") from None
    raise ValueError(f"support must be 'full', 'top-k:K', 'top-p:P' or 'min-p:P'; got {spec!r}")


_WEIGHTS = {"top-m": "top_m", "rank": "rank", "gap": "gap"}


@dataclass(frozen=True)
class Objective(Sampler):
    """A decoder written as an objective (docs/math.md §3): on the support,

        q* = argmax_q <q, logits/temperature>
                      - lam [entropy·Σ q log q + kl·KL(q‖r) + l2·½‖q‖²] + lam·beta·U_K(q)

    with r = softmax(logits / reference_temperature) and the coverage
    U_K(q) = Σ w_v [1 - (1 - q_v)^K], K = k_samples, weights w on the top-m
    tokens of r ('top-m': 1; 'rank': 1/(1 + rank); 'gap': r_v / max r).
    Closed form when only entropy/KL terms are present (q ∝ r^kl·exp(s/lam)
    to the power 1/(entropy + kl)); otherwise ``steps`` entropy-mirror-ascent
    steps of size ``step_size`` from q0 = r, stopping early when the
    optimality gap max g - <q, g> < tol; steps is in [0, 1000] (each step
    is O(vocabulary), with l2 a sort). support: 'full', 'top-k:K',
    'top-p:P' or 'min-p:P' (chosen by softmax(logits)).

    Ranges: lam, entropy, kl, l2, beta, tol >= 0 and temperature,
    reference_temperature, step_size > 0, each a float32 (at most 3.4e38,
    and 0 or at least 1.4e-45 in magnitude; otherwise ValueError). Every
    value in range gives a finite q on the simplex: the closed forms are
    computed in shifted coordinates and equal their limits at the extremes
    (lam -> 0 or temperature -> 0: the argmax of the scores, equal mass on
    exactly tied maxima; lam = 0 exactly: the lowest id among them;
    entropy -> inf: uniform; kl -> inf: r).
    """

    lam: float = 1.0
    entropy: float = 0.0
    kl: float = 1.0
    l2: float = 0.0
    beta: float = 0.0
    k_samples: int = 8
    weights: str = "top-m"
    m: int = 8
    support: str = "full"
    temperature: float = 1.0
    reference_temperature: float = 1.0
    steps: int = 5
    step_size: float = 1.0
    tol: float = 1e-6
    name: ClassVar[str] = "objective"

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)
        for name in ("lam", "entropy", "kl", "l2", "beta", "tol"):
            put(name, v.real32(name, getattr(self, name), low=0.0))
        put("k_samples", v.integer("k_samples", self.k_samples, low=1, high=1_000_000))
        put("m", v.integer("m", self.m, low=1, high=1_000_000))
        put("steps", v.integer("steps", self.steps, low=0, high=v.MAX_STEPS))
        put("step_size", v.real32("step_size", self.step_size, low=0.0, low_open=True))
        put("temperature", v.real32("temperature", self.temperature, low=0.0, low_open=True))
        put("reference_temperature", v.real32("reference_temperature", self.reference_temperature, low=0.0, low_open=True))
        put("weights", v.choice("weights", self.weights, tuple(_WEIGHTS)))
        _support(self.support)

    def params_native(self) -> "_core.ObjectiveParams":
        """The parameters as the C++ struct."""
        p = _core.ObjectiveParams()
        o = _core.Objective()
        o.lam, o.w_entropy, o.w_kl, o.w_l2, o.beta, o.k_samples = (
            self.lam, self.entropy, self.kl, self.l2, self.beta, self.k_samples)
        opt = _core.SolverOptions()
        opt.max_steps, opt.step, opt.tol = self.steps, self.step_size, self.tol
        p.objective, p.solver = o, opt
        p.weights = getattr(_core.CoverageWeights, _WEIGHTS[self.weights])
        p.m = self.m
        p.support, p.support_value = _support(self.support)
        p.temperature, p.reference_temperature = self.temperature, self.reference_temperature
        return p

    def _make(self) -> _core.NativeSampler:
        return _core.make_objective(self.params_native())


@dataclass(frozen=True)
class BestOfK(Sampler):
    """Best-of-K [SIMPLEX §4.3]: for pipelines that draw K samples and then
    vote, rerank or verify. Per token,

        q* = argmax_q <q, s> - lam·KL(q ‖ p) + lam·beta·U_K(q),  s = logits / temperature,

    p = softmax(logits) (base temperature 1), U_K the weighted chance that K
    draws contain each of the top-m tokens of p, solved by ``steps`` mirror-
    ascent steps (J = 5 in the paper; at most 1000). The paper's settings (beta, lam) are
    the presets ``paper-0.01`` (0.01, 0.1), ``paper-0.02`` (0.02, 0.2) and
    ``paper-0.05`` (0.05, 0.5). Not stated by the paper, our defaults: K = 8,
    weights 1 on the top m = 8 tokens of p, step_size 1.0, s = logits/T with
    p at temperature 1, support the full vocabulary. Without the coverage
    term (beta = 0) q ∝ p·exp(s/lam): a strong sharpening. Parameter
    ranges and extremes as in :class:`Objective`.
    """

    k_samples: int = 8
    beta: float = 0.01
    lam: float = 0.1
    steps: int = 5
    step_size: float = 1.0
    weights: str = "top-m"
    m: int = 8
    support: str = "full"
    temperature: float = 1.0
    tol: float = 1e-6
    name: ClassVar[str] = "bok"

    PRESETS: ClassVar[Dict[str, Tuple[float, float]]] = {
        "paper-0.01": (0.01, 0.1),
        "paper-0.02": (0.02, 0.2),
        "paper-0.05": (0.05, 0.5),
    }

    def __post_init__(self) -> None:
        self.objective()  # validates every parameter

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "BestOfK":
        """One of the paper's (beta, lam) settings, other parameters as given."""
        beta, lam = cls.PRESETS[v.choice("preset", name, tuple(cls.PRESETS))]
        return cls(**{"beta": beta, "lam": lam, **overrides})

    def objective(self) -> Objective:
        """The same decoder as a general :class:`Objective`."""
        return Objective(lam=self.lam, kl=1.0, beta=self.beta, k_samples=self.k_samples, weights=self.weights,
                         m=self.m, support=self.support, temperature=self.temperature, steps=self.steps,
                         step_size=self.step_size, tol=self.tol)

    def _make(self) -> _core.NativeSampler:
        return self.objective()._make()


@dataclass(frozen=True)
class Dist(Sampler):
    """Final draw from softmax(logits) of what the chain left, with a seeded RNG.

    ``seed`` is used only when the sampler is built without a call seed
    (``native()`` with seed=None, e.g. in :func:`llama_simplex.kernels.decode`
    or a chain handed to llama.cpp by hand); :func:`llama_simplex.generate`,
    :func:`llama_simplex.sample_k` and the other entry points pass their own
    ``seed``, which then decides the draws.
    """

    seed: int = 0
    name: ClassVar[str] = "dist"

    def __post_init__(self) -> None:
        object.__setattr__(self, "seed", v.integer("seed", self.seed, low=0, high=SEED_MAX))

    def _make(self) -> _core.NativeSampler:
        return _core.make_dist(self.seed)


@dataclass(frozen=True, init=False)
class Chain(Sampler):
    """Samplers applied one after another, like a llama.cpp sampler chain.

    With a call seed (``native(seed)``, every entry point) the chain always
    draws its token: from the q its last member leaves, with that seed (an
    explicit :class:`Dist` in it takes the call's seed too).
    """

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
