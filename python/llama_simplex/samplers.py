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


_SPECS: Dict[str, Dict[str, Any]] = {s["name"]: s for s in _core.sampler_specs()}
_PY_TYPES = {"f32": float, "f64": float, "i32": int, "u32": int, "bool": bool, "choice": str, "support": str}


def from_table(table_name: str) -> Any:
    """Class decorator: a frozen dataclass whose fields (names, types, defaults
    and order), checks and parameter docs are the sampler table's
    (cpp/src/specs.cpp) entry `table_name`, and its presets, so that they are
    written once for every surface. A ``_check`` method the class defines runs
    after the table's checks (the checks between parameters)."""
    def wrap(cls: type) -> type:
        spec = _SPECS[table_name]
        params = [p for p in spec["params"] if "python" in p["surfaces"]]
        own = dict(cls.__dict__.get("__annotations__", {}))
        cls.__annotations__ = {**{p["name"]: _PY_TYPES[p["type"]] for p in params}, **own}
        for p in params:
            setattr(cls, p["name"], p["default"])
        cls.SPEC = spec
        if spec["presets"]:
            cls.PRESETS = {ps["name"]: dict(ps["values"]) for ps in spec["presets"]}
        lines = [f"    {p['name']} = {p['default']!r} ("
                 + ("one of " + ", ".join(map(repr, p["choices"])) if p["type"] == "choice" else p["range"])
                 + (f"; {p['note']}" if p["note"] else "") + f"): {p['doc']}" for p in params]
        lines += [f"    preset {ps['name']}: " + ", ".join(f"{k}={val!r}" for k, val in ps["values"].items())
                  + f" ({ps['doc']})" for ps in spec["presets"]]
        if lines:
            cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n\n    Parameters (the sampler table, " \
                f"``{spec['name']}``):\n\n" + "\n".join(lines) + "\n"
        extra = cls.__dict__.get("_check")

        def __post_init__(self: Any) -> None:
            for p in params:
                object.__setattr__(self, p["name"], v.table_param(spec["name"], p["name"], getattr(self, p["name"])))
            if extra is not None:
                extra(self)

        cls.__post_init__ = __post_init__
        return dataclass(frozen=True)(cls)
    return wrap


class Sampler:
    """Base class: a decoder that can become a native llama.cpp sampler."""

    name: ClassVar[str] = ""

    def _make(self) -> _core.NativeSampler:
        # The one constructor every surface uses (llama-server's too): the C struct's
        # defaults, these parameters over them through the sampler table, the C API's check.
        return _core.make_sampler(self.SPEC["name"], self.params())  # type: ignore[attr-defined]

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


@from_table("greedy")
class Greedy(Sampler):
    """All mass on the highest logit (λ = 0); ties go to the lowest token id."""

    name: ClassVar[str] = "greedy"


@from_table("softmax")
class Softmax(Sampler):
    """q = softmax(logits / temperature) (negative-entropy regulariser, λ = temperature).

    temperature = 0 is greedy decoding.
    """

    name: ClassVar[str] = "softmax"


@from_table("top_k")
class TopK(Sampler):
    """softmax(logits / temperature) over the k highest logits (lower id wins ties).

    k = 0 keeps every token, as in llama.cpp.
    """

    name: ClassVar[str] = "top-k"


@from_table("top_p")
class TopP(Sampler):
    """Nucleus sampling: softmax(logits / temperature) over the smallest set of
    tokens, taken in order of probability, whose mass reaches p.

    ``order="model"`` (default, the paper): the nucleus is chosen by the model
    distribution softmax(logits), temperature is applied after.
    ``order="temperature"`` (llama.cpp's ``temp -> top_p`` chain): the nucleus
    is chosen by softmax(logits / temperature).
    """

    name: ClassVar[str] = "top-p"


@from_table("min_p")
class MinP(Sampler):
    """softmax(logits / temperature) over {v : p(v) >= p_min * max p}, p = softmax(logits)."""

    name: ClassVar[str] = "min-p"


@from_table("sparsemax")
class Sparsemax(Sampler):
    """Euclidean projection of logits / temperature onto the simplex:
    q = [logits / temperature - tau]_+ (½‖q‖² regulariser), with exact zeros.
    """

    name: ClassVar[str] = "sparsemax"


@from_table("objective")
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
    optimality gap max g - <q, g> < tol (each step
    is O(vocabulary), with l2 a sort). The support is chosen by
    softmax(logits).

    Each float parameter is a float32 (at most 3.4e38, and 0 or at least
    1.4e-45 in magnitude; otherwise ValueError), in the range listed below. Every
    value in range gives a finite q on the simplex: the closed forms are
    computed in shifted coordinates and equal their limits at the extremes
    (lam -> 0 or temperature -> 0: the argmax of the scores, equal mass on
    exactly tied maxima; lam = 0 exactly: the lowest id among them;
    entropy -> inf: uniform; kl -> inf: r).
    """

    name: ClassVar[str] = "objective"


@from_table("best_of_k")
class BestOfK(Sampler):
    """Best-of-K [SIMPLEX §4.3]: for pipelines that draw K samples and then
    vote, rerank or verify. Per token,

        q* = argmax_q <q, s> - lam·KL(q ‖ p) + lam·beta·U_K(q),  s = logits / temperature,

    p = softmax(logits) (base temperature 1), U_K the weighted chance that K
    draws contain each of the top-m tokens of p, solved by ``steps`` mirror-
    ascent steps (J in the paper). The paper's settings of (beta, lam) are
    the presets listed below, and its J is the default ``steps``. Not stated
    by the paper, ours: ``k_samples``, ``weights`` on the top ``m`` tokens
    of p, ``step_size``, s = logits/T with p at temperature 1, and the
    ``support``. Without the coverage
    term (beta = 0) q ∝ p·exp(s/lam): a strong sharpening. Parameter
    ranges and extremes as in :class:`Objective`.
    """

    name: ClassVar[str] = "bok"
    PRESETS: ClassVar[Dict[str, Dict[str, Any]]]  # the table's: name -> {parameter: value}

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "BestOfK":
        """One of the paper's (beta, lam) settings, other parameters as given."""
        return cls(**{**cls.PRESETS[v.choice("preset", name, tuple(cls.PRESETS))], **overrides})

    def objective(self) -> Objective:
        """The same decoder as a general :class:`Objective`."""
        # the table's: best_of_k is the objective with its `fixed` values (kl = 1, ...)
        return Objective(**self.params(), **self.SPEC["fixed"])


@from_table("dist")
class Dist(Sampler):
    """Final draw from softmax(logits) of what the chain left, with a seeded RNG.

    ``seed`` is used only when the sampler is built without a call seed
    (``native()`` with seed=None, e.g. in :func:`llama_simplex.kernels.decode`
    or a chain handed to llama.cpp by hand); :func:`llama_simplex.generate`,
    :func:`llama_simplex.sample_k` and the other entry points pass their own
    ``seed``, which then decides the draws.
    """

    name: ClassVar[str] = "dist"

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
