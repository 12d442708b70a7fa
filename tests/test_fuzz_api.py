"""A corpus of bad (and borderline) inputs over every public Python
constructor and entry point and every C API constructor (through ctypes).

Each case either raises ValueError/TypeError whose message names the
parameter (C: a status code, and llama_simplex_last_error() naming the
field), or is valid by the documented range and then gives a correct
result: a sampler built from it yields a distribution q (finite, >= 0, sum 1)
and a token, or the documented q-check error ("q is not a distribution").
The process must survive every case: on main, some of these aborted it.
"""

from __future__ import annotations

import ctypes
import math
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import pytest

import llama_simplex as ls


from test_c_api import (PKG, BestOfKParams, DrawParams, MinPParams, ObjectiveParams, PowerParams, SoftmaxParams,
                        SparsemaxParams, TopKParams, TopPParams, _apply)

NAN, INF = float("nan"), float("inf")
INT32_MAX = 2**31 - 1
LOGITS = (np.sin(np.arange(32) * 1.3) * 4.0).astype(np.float32)

# --- the corpus: one list of values per kind, each value labelled with whether it is in range ----------------

REALS = [0.0, -0.0, 5e-324, 1e-320, 1e-45, 1e-38, 1e-12, 0.5, 1.0, 7.0, 1e6, 1e30, 1e308, -5e-324, -1e-12, -1.0,
         -1e308, NAN, INF, -INF, 2**70, -(2**70), np.float32(0.5), np.float64(NAN), np.float32(INF)]
NOT_REALS = ["1.0", None, [1.0], (1.0,), {}, object(), b"1", complex(1, 1), True, False]
INTS = [0, 1, 2, 8, 255, 256, 1000, 1001, 2**24, 2**31 - 2, 2**31 - 1, 2**31, 2**32 - 2, 2**32 - 1, 2**32, 2**63,
        2**70, -1, -(2**31), -(2**63), np.int64(3), np.int64(-1), np.int32(7), np.uint64(2**63)]
NOT_INTS = [1.5, 2.0, NAN, INF, "3", None, True, False, [1], object(), np.float64(2.0)]

RealRange = Tuple[float, float, bool]  # low, high, low open


FLOAT32_MAX, FLOAT32_TRUE_MIN = 3.4028234663852886e38, 1.401298464324817e-45


def real_ok(value: Any, low: float, high: float, low_open: bool = False, f32: bool = False) -> bool:
    """In range; with f32, also a float32 (the native type): |x| <= FLOAT32_MAX, 0 or >= FLOAT32_TRUE_MIN."""
    x = float(value)
    ok = math.isfinite(x) and (x > low if low_open else x >= low) and x <= high
    return ok and (not f32 or x == 0.0 or FLOAT32_TRUE_MIN <= abs(x) <= FLOAT32_MAX)


def int_ok(value: Any, low: int, high: int) -> bool:
    return low <= int(value) <= high


# Each parameter: (kind, range). kind "real": (low, high, low_open, float32?); "int": (low, high).
TEMP0 = ("real", (0.0, math.inf, False, True))
POS = ("real", (0.0, math.inf, True, True))
PROB = ("real", (0.0, 1.0, False, False))  # p, p_min: doubles
NONNEG = ("real", (0.0, math.inf, False, True))
SEED = ("int", (0, 2**32 - 2))

SAMPLER_SPECS: Dict[type, Dict[str, Tuple[str, Any]]] = {
    ls.Softmax: {"temperature": TEMP0},
    ls.TopK: {"k": ("int", (0, INT32_MAX)), "temperature": TEMP0},
    ls.TopP: {"p": PROB, "temperature": TEMP0},
    ls.MinP: {"p_min": PROB, "temperature": TEMP0},
    ls.Sparsemax: {"temperature": TEMP0},
    ls.Dist: {"seed": SEED},
    ls.Objective: {"lam": NONNEG, "entropy": NONNEG, "kl": NONNEG, "l2": NONNEG, "beta": NONNEG, "tol": NONNEG,
                   "k_samples": ("int", (1, INT32_MAX)), "m": ("int", (1, INT32_MAX)),
                   "steps": ("int", (0, 1000)), "step_size": POS, "temperature": POS,
                   "reference_temperature": POS},
    ls.BestOfK: {"k_samples": ("int", (1, INT32_MAX)), "beta": NONNEG, "lam": NONNEG, "steps": ("int", (0, 1000)),
                 "step_size": POS, "m": ("int", (1, INT32_MAX)), "temperature": POS, "tol": NONNEG},
}
CHOICES: Dict[type, Dict[str, Tuple[str, ...]]] = {
    ls.TopP: {"order": ("model", "temperature")},
    ls.Objective: {"weights": ("top-m", "rank", "gap"), "support": ("full", "top-k:3", "top-p:0.5", "min-p:0.1")},
    ls.BestOfK: {"weights": ("top-m", "rank", "gap"), "support": ("full", "top-k:3", "top-p:0.5", "min-p:0.1")},
}
BAD_CHOICES = ["", "nope", None, 5, b"model", "MODEL", "top-k:", "top-k:0", "top-k:-3", "top-k:1e99", "top-p:2",
               "top-p:nan", "min-p:-0.1", "top-k:99999999999", "full:1"]


def _cases() -> List[Tuple[type, str, Any, Optional[bool]]]:
    """(class, parameter, value, in range?) with None for a wrong type."""
    out = []
    for cls, spec in SAMPLER_SPECS.items():
        for name, (kind, rng) in spec.items():
            if kind == "real":
                out += [(cls, name, x, real_ok(x, *rng)) for x in REALS]
                out += [(cls, name, x, None) for x in NOT_REALS]
            else:
                out += [(cls, name, x, int_ok(x, *rng)) for x in INTS]
                out += [(cls, name, x, None) for x in NOT_INTS]
    for cls, spec in CHOICES.items():
        for name, allowed in spec.items():
            out += [(cls, name, x, True) for x in allowed]
            out += [(cls, name, x, False) for x in BAD_CHOICES]
    return out


CASES = _cases()


def names_parameter(e: BaseException, name: str) -> bool:
    text = str(e)
    return name in text or name.replace("_", " ") in text


def check_q(sampler: ls.Sampler, seed: int = 3) -> None:
    """A sampler valid by its documented ranges: q is a distribution and a token
    is drawn, or the q check reports the degenerate case by name."""
    try:
        ids, _lg, p, selected, _ = sampler.native(seed=seed).apply(LOGITS)
    except ValueError as e:
        assert "q is not a distribution" in str(e), (sampler, e)
        return
    assert len(ids) >= 1 and np.all(np.isfinite(p)) and np.all(p >= 0), (sampler, p)
    assert abs(float(p.sum()) - 1.0) < 1e-4, (sampler, p.sum())
    assert 0 <= selected < len(ids), (sampler, selected)


@pytest.mark.parametrize("cls, name, value, ok", CASES, ids=[f"{c.__name__}-{n}-{i}" for i, (c, n, _x, _o)
                                                             in enumerate(CASES)])
def test_sampler_constructors(cls, name, value, ok):
    if ok:
        check_q(cls(**{name: value}))
        return
    with pytest.raises(TypeError if ok is None else (ValueError, TypeError)) as e:
        s = cls(**{name: value})
        s.native(seed=0)  # reached only if the constructor let it through
    assert names_parameter(e.value, name), e.value


@pytest.mark.parametrize("make", [
    lambda: ls.Greedy(1), lambda: ls.Softmax(temperature=1.0, k=3), lambda: ls.Chain(),
    lambda: ls.Chain(5), lambda: ls.Chain(ls.TopK, ls.Greedy()), lambda: ls.Chain(None),
    lambda: ls.Chain(ls.TopK(), "x"), lambda: ls.Chain([ls.TopK()]),
    lambda: ls.BestOfK.preset("nope"), lambda: ls.BestOfK.preset(None), lambda: ls.BestOfK.preset(5),
    lambda: ls.BestOfK.preset("paper-0.01", steps=10**6), lambda: ls.BestOfK.preset("paper-0.01", lam=NAN),
    lambda: ls.BestOfK.preset("paper-0.01", nope=1), lambda: ls.sampler_from_name("top-k", k=2**40),
    lambda: ls.sampler_from_name(None), lambda: ls.sampler_from_name("objective", steps=100_000),
])
def test_composite_constructors(make):
    with pytest.raises((ValueError, TypeError)) as e:
        make()
    text = str(e.value)
    assert any(w in text for w in ("samplers", "preset", "steps", "lam", "nope", "k ", "k:", "sampler",
                                   "argument", "temperature")), text


def test_valid_composites_draw():
    for s in (ls.Chain(ls.TopK(k=5), ls.MinP(p_min=0.05)), ls.Chain(ls.Greedy()), ls.Chain(ls.Dist(seed=2**32 - 2)),
              ls.Chain(ls.Chain(ls.TopP(p=0.3), ls.Softmax(0.1)), ls.Dist()), ls.BestOfK.preset("paper-0.05"),
              ls.Chain(ls.BestOfK.preset("paper-0.01", steps=1000), ls.Sparsemax(temperature=1e-30))):
        check_q(s)


# --- kernels ---------------------------------------------------------------------------------------------------

BAD_LOGITS = [[], np.zeros((2, 2), np.float32), [NAN, 1.0], None, 5, "ab", [[1.0, 2.0]], [-INF, -INF], object(),
              ["a", "b"]]
KERNELS: List[Tuple[str, Callable[..., Any]]] = [
    ("greedy", lambda l: ls.kernels.greedy(l)),
    ("softmax", lambda l: ls.kernels.softmax(l, temperature=0.5)),
    ("top_k", lambda l: ls.kernels.top_k(l, k=2)),
    ("top_p", lambda l: ls.kernels.top_p(l, p=0.5)),
    ("min_p", lambda l: ls.kernels.min_p(l, p_min=0.1)),
    ("sparsemax", lambda l: ls.kernels.sparsemax(l)),
    ("decode", lambda l: ls.kernels.decode(l, ls.TopK(k=3))),
    ("coverage_weights", lambda l: ls.kernels.coverage_weights(l, m=2)),
]


@pytest.mark.parametrize("kernel", [k for _n, k in KERNELS], ids=[n for n, _k in KERNELS])
@pytest.mark.parametrize("logits", BAD_LOGITS, ids=[f"logits{i}" for i in range(len(BAD_LOGITS))])
def test_kernels_refuse_bad_logits(kernel, logits):
    if kernel is KERNELS[-1][1] and isinstance(logits, list) and logits and logits[0] == -INF:
        # Defined, not refused: no token can be drawn, so none has coverage weight.
        assert list(kernel(logits)) == [0.0] * len(logits)
        return
    with pytest.raises((ValueError, TypeError)) as e:
        kernel(logits)
    assert any(w in str(e.value) for w in ("logits", "log_r", "NaN", "finite")), e.value


KERNEL_INT_PARAMS = [
    (lambda x: ls.kernels.top_k(LOGITS, k=x), "k"),
    (lambda x: ls.kernels.coverage_weights(LOGITS, m=x), "m"),
    (lambda x: ls.kernels.solve(LOGITS, LOGITS, lam=1.0, steps=x), "steps"),
    (lambda x: ls.kernels.solve(LOGITS, LOGITS, lam=1.0, k_samples=x), "k_samples"),
]
KERNEL_REAL_PARAMS = [
    (lambda x: ls.kernels.softmax(LOGITS, temperature=x), "temperature"),
    (lambda x: ls.kernels.top_p(LOGITS, p=x), "p"),
    (lambda x: ls.kernels.min_p(LOGITS, p_min=x), "p_min"),
    (lambda x: ls.kernels.sparsemax(LOGITS, temperature=x), "temperature"),
    (lambda x: ls.kernels.solve(LOGITS, LOGITS, lam=x), "lam"),
    (lambda x: ls.kernels.solve(LOGITS, LOGITS, lam=1.0, step_size=x), "step_size"),
    (lambda x: ls.kernels.gradient(LOGITS, LOGITS, np.full(32, 1 / 32), lam=x), "lam"),
]
BAD_INT_VALUES = [-1, 2**31, 2**63, 2**70, -(2**63), 1.5, NAN, "1", None, True]
BAD_REAL_VALUES = [-1.0, -5e-324, NAN, INF, -INF, "1", None, True, [1.0], complex(1, 0)]


@pytest.mark.parametrize("call, name", KERNEL_INT_PARAMS + KERNEL_REAL_PARAMS,
                         ids=[f"{n}{i}" for i, (_c, n) in enumerate(KERNEL_INT_PARAMS + KERNEL_REAL_PARAMS)])
@pytest.mark.parametrize("index", range(10))
def test_kernel_parameters(call, name, index):
    value = (BAD_INT_VALUES if (call, name) in KERNEL_INT_PARAMS else BAD_REAL_VALUES)[index]
    if name in ("p", "p_min") and value == INF:
        value = 1.5
    with pytest.raises((ValueError, TypeError)) as e:
        call(value)
    assert names_parameter(e.value, name), e.value


# --- generate, sample_k, load_model, create_completion --------------------------------------------------------

GENERATE_BAD: List[Tuple[str, Any]] = (
    [("max_tokens", x) for x in (-1, 2**31, 2**63, 2**70, 1.5, NAN, "8", None, True)]
    + [("seed", x) for x in (-1, 2**32 - 1, 2**32, 2**63, 2**70, 1.5, NAN, "1", True)]
    + [("stop", x) for x in (5, [5], [""], [None], b"x", [b"x"], 1.5)]
    + [("callback", x) for x in (5, "x")]
    + [("add_special", x) for x in ("yes", 1, None)]
    + [("sampler", x) for x in ("top-k", 5, ls.TopK, object())]
    + [("prompt", x) for x in (b"abc", bytearray(b"abc"), memoryview(b"ab"), 42, None, 1.5, [1.5], [-1], [2**31],
                               [2**63], [2**70], [999], [], [True], {"a": 1}, [None], np.array([1.5, 2.0]))]
)


def _named(e: BaseException, name: str) -> bool:
    return name in str(e)


@pytest.mark.parametrize("name, value", GENERATE_BAD, ids=[f"{n}-{i}" for i, (n, _x) in enumerate(GENERATE_BAD)])
def test_generate_and_sample_k_refuse(tiny_llm, tiny_text, name, value):
    kwargs: Dict[str, Any] = {"max_tokens": 3, "seed": 1}
    prompt = value if name == "prompt" else tiny_text
    sampler = value if name == "sampler" else ls.TopK(k=4)
    if name not in ("prompt", "sampler"):
        kwargs[name] = value
    with pytest.raises((ValueError, TypeError)) as e:
        ls.generate(tiny_llm, prompt, sampler, **kwargs).wait()
    assert _named(e.value, name), e.value
    if name in ("callback",):
        return
    with pytest.raises((ValueError, TypeError)) as e:
        ls.sample_k(tiny_llm, prompt, 2, sampler, **kwargs)
    assert _named(e.value, name), e.value


@pytest.mark.parametrize("k", [0, -1, 257, 2**31, 2**63, 2**70, 1.5, NAN, "2", None, True])
def test_sample_k_refuses_k(tiny_llm, tiny_text, k):
    with pytest.raises((ValueError, TypeError), match="k must"):
        ls.sample_k(tiny_llm, tiny_text, k, ls.Greedy(), max_tokens=2)


@pytest.mark.parametrize("max_tokens", [2**31 - 1, 10**6, 2**20])
def test_sample_k_refuses_a_cache_it_cannot_hold(tiny_llm, tiny_text, max_tokens):
    with pytest.raises(ValueError, match="max_tokens"):
        ls.sample_k(tiny_llm, tiny_text, 4, ls.Greedy(), max_tokens=max_tokens)


def test_valid_extremes_of_generate_finish(tiny_llm, tiny_text):
    # Documented results at the edges of the ranges: seed 2**32 - 2, max_tokens far past n_ctx.
    g = ls.generate(tiny_llm, tiny_text, ls.TopK(k=4), max_tokens=2**31 - 1, seed=2**32 - 2, stop=[], add_special=False)
    assert g.finish_reason == "" and g.wait().finish_reason in ("stop", "length")
    assert len(g.tokens) < 256  # bounded by the context
    s = ls.sample_k(tiny_llm, [1, 3, 4], 256, ls.Greedy(), max_tokens=0, seed=0)
    assert s.tokens == [[]] * 256


@pytest.mark.parametrize("kwargs, name", [
    ({"model": 42}, "model"), ({"model": b"/x.gguf"}, "model"), ({"model": "/nonexistent.gguf"}, "model"),
    ({"n_ctx": 2**40}, "n_ctx"), ({"n_ctx": 2**31}, "n_ctx"), ({"n_ctx": -1}, "n_ctx"), ({"n_ctx": 15}, "n_ctx"),
    ({"n_ctx": 1.5}, "n_ctx"), ({"n_ctx": NAN}, "n_ctx"), ({"n_ctx": "512"}, "n_ctx"), ({"n_ctx": None}, "n_ctx"),
    ({"n_gpu_layers": -2}, "n_gpu_layers"), ({"n_gpu_layers": 2**40}, "n_gpu_layers"),
    ({"n_gpu_layers": 0.5}, "n_gpu_layers"),
])
def test_load_model_refuses(tiny_model_path, kwargs, name):
    kwargs = {"model": tiny_model_path, **kwargs}
    with pytest.raises((ValueError, TypeError, ls.ModelNotFoundError)) as e:
        ls.load_model(**kwargs)
    assert name in str(e.value), e.value


@pytest.mark.parametrize("kwargs, name", [
    ({"sampler": "top-k"}, "sampler"), ({"sampler": None}, "sampler"), ({"sampler": ls.TopK}, "sampler"),
    ({"seed": -1}, "seed"), ({"seed": 2**70}, "seed"), ({"seed": 1.5}, "seed"), ({"seed": "1"}, "seed"),
    ({"temperature": 0.5}, "temperature"), ({"top_k": 3}, "top_k"),
])
def test_create_completion_refuses(tiny_llm, tiny_text, kwargs, name):
    args = {"sampler": ls.TopK(k=4), "seed": 1, "max_tokens": 2, **kwargs}
    sampler = args.pop("sampler")
    with pytest.raises((ValueError, TypeError)) as e:
        ls.create_completion(tiny_llm, tiny_text, sampler, **args)
    assert name in str(e.value), e.value


# --- the C API -------------------------------------------------------------------------------------------------

# name -> (struct, {field: (kind, range)}); float fields are float32 in C.
C_SPECS: Dict[str, Tuple[type, Dict[str, Tuple[str, Any]]]] = {
    "softmax": (SoftmaxParams, {"temperature": TEMP0}),
    "top_k": (TopKParams, {"k": ("int", (0, INT32_MAX)), "temperature": TEMP0}),
    "top_p": (TopPParams, {"p": PROB, "temperature": TEMP0}),
    "min_p": (MinPParams, {"p_min": PROB, "temperature": TEMP0}),
    "sparsemax": (SparsemaxParams, {"temperature": TEMP0}),
    "best_of_k": (BestOfKParams, {"k_samples": ("int", (1, INT32_MAX)), "beta": NONNEG, "lam": NONNEG,
                                  "steps": ("int", (0, 1000)), "step_size": POS, "m": ("int", (1, INT32_MAX)),
                                  "temperature": POS}),
    "objective": (ObjectiveParams, {"lam": NONNEG, "entropy": NONNEG, "kl": NONNEG, "l2": NONNEG, "beta": NONNEG,
                                    "tol": NONNEG, "k_samples": ("int", (1, INT32_MAX)), "weights": ("int", (0, 2)),
                                    "m": ("int", (1, INT32_MAX)), "support": ("int", (0, 3)),
                                    "temperature": POS, "reference_temperature": POS, "steps": ("int", (0, 1000)),
                                    "step_size": POS}),
}
C_FLOATS = [0.0, 1e-45, 1e-40, 1e-38, 1e-12, 0.5, 1.0, 3e38, -1e-45, -1.0, -3e38, NAN, INF, -INF]
C_INTS = [0, 1, 2, 3, 4, 1000, 1001, INT32_MAX, -1, -(2**31)]


def _c_cases() -> List[Tuple[str, str, Any, bool]]:
    out = []
    for kind_name, (_struct, spec) in C_SPECS.items():
        for field, (kind, rng) in spec.items():
            if kind == "real":
                out += [(kind_name, field, x, real_ok(float(np.float32(x)), *rng[:3])) for x in C_FLOATS]
            else:
                out += [(kind_name, field, x, int_ok(x, *rng)) for x in C_INTS]
    return out


C_CASES = _c_cases()


@pytest.fixture(scope="module")
def clib():
    lib = ctypes.CDLL(str(PKG / "lib" / "libllama_simplex.so"))
    lib.llama_simplex_last_error.restype = ctypes.c_char_p
    for kind_name, (struct, _spec) in C_SPECS.items():
        getattr(lib, f"llama_simplex_{kind_name}_default_params").restype = struct
    lib.llama_simplex_power_default_params.restype = PowerParams
    return lib


@pytest.mark.parametrize("kind_name, field, value, ok", C_CASES,
                         ids=[f"{k}-{f}-{i}" for i, (k, f, _x, _o) in enumerate(C_CASES)])
def test_c_constructors(clib, kind_name, field, value, ok):
    import llama_cpp
    p = getattr(clib, f"llama_simplex_{kind_name}_default_params")()
    setattr(p, field, value)
    if field == "support":
        p.support_value = 1.0  # valid for every support: k = 1, p = 1
    p.draw = DrawParams(True, 5)
    out = ctypes.c_void_p(1234)
    status = getattr(clib, f"llama_simplex_{kind_name}")(ctypes.byref(p), ctypes.byref(out))
    if not ok:
        assert status == 1 and out.value is None, (status, out.value)
        assert clib.llama_simplex_last_error().decode().startswith(field + ":"), clib.llama_simplex_last_error()
        return
    assert status == 0 and out.value, clib.llama_simplex_last_error()
    smpl = ctypes.cast(out, llama_cpp.llama_sampler_p_ctypes)
    try:
        ids, q, selected = _apply(smpl, LOGITS.tolist())
        sampler_status = clib.llama_simplex_sampler_status(out)
        assert 0 <= selected < len(ids)
        if sampler_status == 0:
            assert all(math.isfinite(x) and x >= 0 for x in q) and abs(sum(q) - 1.0) < 1e-4, q
        else:
            assert sampler_status == 5, sampler_status  # the q check: degenerate parameters, reported
    finally:
        llama_cpp.llama_sampler_free(smpl)


@pytest.mark.parametrize("field, value", [("alpha", NAN), ("alpha", 0.0), ("alpha", -1.0), ("alpha", INF),
                                          ("candidates", 0), ("candidates", 256), ("candidates", -1),
                                          ("rollouts", 0), ("rollouts", 256), ("horizon", -1), ("n_ctx", 0),
                                          ("n_ctx", 63)])
def test_c_power_constructor(clib, tiny_llm, field, value):
    p = clib.llama_simplex_power_default_params()
    setattr(p, field, value)
    out = ctypes.c_void_p(1234)
    model = ctypes.c_void_p(ctypes.cast(tiny_llm.model, ctypes.c_void_p).value)
    assert clib.llama_simplex_power(ctypes.byref(p), model, ctypes.byref(out)) == 1
    assert out.value is None and clib.llama_simplex_last_error().decode().startswith(field + ":")


@pytest.mark.parametrize("kind_name", sorted(C_SPECS))
def test_c_null_pointers(clib, kind_name):
    make = getattr(clib, f"llama_simplex_{kind_name}")
    out = ctypes.c_void_p()
    assert make(None, ctypes.byref(out)) == 2 and b"params" in clib.llama_simplex_last_error()
    p = getattr(clib, f"llama_simplex_{kind_name}_default_params")()
    assert make(ctypes.byref(p), None) == 2 and b"out" in clib.llama_simplex_last_error()
    assert clib.llama_simplex_greedy(None) == 2
    pw = clib.llama_simplex_power_default_params()
    assert clib.llama_simplex_power(ctypes.byref(pw), None, ctypes.byref(out)) == 2
    assert clib.llama_simplex_sampler_status(None) == 0
