"""Parity of every surface with the sampler table (cpp/src/specs.cpp, exported
as ``_core.sampler_specs()``): the Python classes, the C API, llama-server's
reader (``_core.read_sampler_params``, the function the server runs), the
``llama-simplex samplers`` listing and the presets. For each sampler and each
parameter a surface takes: the same name, the same default, and the same range,
probed at its ends (the ends accepted, just outside refused with the parameter
named). Any difference fails."""

from __future__ import annotations

import ctypes
import dataclasses
import math
from typing import Any, Dict, Iterator, List, Tuple

import numpy as np
import pytest

import llama_simplex as ls
from llama_simplex import _core, cli
from llama_simplex.power import BlockPowerSampler, MCMCPowerSampler, PowerSampler
from test_c_api import C_STRUCTS, PKG

SPECS: List[Dict[str, Any]] = _core.sampler_specs()
BY_NAME = {s["name"]: s for s in SPECS}
CLASSES = [ls.Greedy, ls.Softmax, ls.TopK, ls.TopP, ls.MinP, ls.Sparsemax, ls.BestOfK, ls.Objective, PowerSampler,
           BlockPowerSampler, MCMCPowerSampler, ls.SMCPowerSampler, ls.Dist]
F32_MAX = float(np.finfo(np.float32).max)
F32_TRUE_MIN = 1.401298464324817e-45
LIMITS = {"i32": (-2**31, 2**31 - 1), "u32": (0, 2**32 - 1)}
# C_STRUCTS: the C struct of each sampler with a C constructor (test_c_api's ctypes
# mirrors, made from the table and checked against the compiled header's layout there).
# Table parameters whose C field is named or shaped otherwise: a choice of two kept
# as a bool, and the support spec kept as (kind, value).
C_FIELDS = {"order": ("order_by_temperature",), "support": ("support", "support_value")}


# The samplers built by the table's one constructor (specs.h make_sampler), from their
# C struct alone: Python's classes and llama-server's registry both call it.
# The samplers whose C constructor takes the model (their rollouts / particles run on it),
# with settings small enough to build on the tiny model.
WITH_MODEL = {"power": dict(candidates=2, rollouts=2, horizon=2, n_ctx=4096),
              "smc": dict(particles=2, max_tokens=4, n_ctx=4096)}


def _small(c, name: str):
    for field, value in WITH_MODEL.get(name, {}).items():
        setattr(c, field, value)
    return c


BUILT_BY_TABLE = ("greedy", "softmax", "top_k", "top_p", "min_p", "sparsemax", "best_of_k", "objective")


def spec_of(cls: type) -> Dict[str, Any]:
    """The table entry whose canonical name or alias the Python class carries."""
    found = [s for s in SPECS if cls.name == s["name"] or cls.name in s["aliases"]]
    assert len(found) == 1, f"{cls.__name__}.name {cls.name!r} is not one sampler's name or alias in the table"
    return found[0]


def params_on(spec: Dict[str, Any], surface: str) -> List[Dict[str, Any]]:
    return [p for p in spec["params"] if surface in p["surfaces"]]


def f32(x: float) -> float:
    return float(np.float32(x))


def probes(p: Dict[str, Any]) -> Iterator[Tuple[Any, bool]]:
    """(value, allowed) at the ends of the parameter's range, and just outside."""
    t, lo, hi = p["type"], p["low"], p["high"]
    if t == "bool":
        yield True, True
        yield False, True
        return
    if t == "choice":
        for c in p["choices"]:
            yield c, True
        yield "bogus", False
        return
    if t == "support":
        yield from [("full", True), ("top-k:1", True), (f"top-k:{2**31 - 1}", True), ("top-p:0", True),
                    ("top-p:1", True), ("min-p:1", True), ("top-k:0", False), ("top-p:1.5", False),
                    ("min-p:-0.1", False), ("top-q:3", False)]
        return
    if t in LIMITS:
        yield int(lo), True
        yield int(lo) - 1, False
        yield int(hi), True
        yield int(hi) + 1, False
        return
    # reals: the closed ends accepted, just outside refused; an open end refused,
    # the next representable value accepted; no finite end: the type's largest value
    tiny = F32_TRUE_MIN if t == "f32" else 5e-324
    if p["low_open"]:
        yield lo, False
        yield lo + tiny if lo == 0 else lo * (1 + 1e-6), True
    else:
        yield lo, True
        yield lo - max(abs(lo) * 1e-6, 1e-30), False
    if math.isfinite(hi):
        yield hi, True
        yield hi + max(abs(hi) * 1e-6, 1e-30), False
    else:
        yield (F32_MAX if t == "f32" else 1e308), True
        if t == "f32":
            yield 3.5e38, False
            if lo == 0 and not p["low_open"]:
                yield 1e-46, False  # below the smallest float32 (would become 0)


# Values a probe needs besides the one probed (block power's joint sequence limit).
CONTEXT = {("block_power", "rollouts"): {"samples": 1, "tail_samples": 1}}


def test_the_table_is_consistent():
    names = [n for s in SPECS for n in (s["name"], *s["aliases"])]
    assert len(names) == len(set(names)), "a name or alias used twice"
    assert [s["name"] for s in SPECS] == ["greedy", "softmax", "top_k", "top_p", "min_p", "sparsemax", "best_of_k",
                                          "objective", "power", "block_power", "mcmc", "smc", "dist"]
    for s in SPECS:
        assert s["server_name"] in (None, s["name"], *s["aliases"])
        for p in s["params"]:
            assert p["doc"] and p["surfaces"], (s["name"], p["name"])
            for value, allowed in probes(p):
                if value == p["default"]:
                    assert allowed, (s["name"], p["name"], "default outside the range")
        for preset in s["presets"]:
            for k in preset["values"]:
                assert any(p["name"] == k for p in s["params"]), (s["name"], preset["name"], k)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_python_classes(cls):
    """Field names, order and defaults, and the ranges probed at their ends."""
    spec = spec_of(cls)
    table = params_on(spec, "python")
    fields = dataclasses.fields(cls)
    assert [f.name for f in fields] == [p["name"] for p in table]
    for f, p in zip(fields, table):
        default = f.default
        assert type(default) is type(p["default"]) and (default == p["default"]), (spec["name"], p["name"], default)
        for value, allowed in probes(p):
            kwargs = {**CONTEXT.get((spec["name"], p["name"]), {}), p["name"]: value}
            if allowed:
                cls(**kwargs)
            else:
                with pytest.raises((ValueError, TypeError), match=p["name"]):
                    cls(**kwargs)


@pytest.fixture(scope="module")
def lib():
    lib = ctypes.CDLL(str(PKG / "lib" / "libllama_simplex.so"))
    lib.llama_simplex_last_error.restype = ctypes.c_char_p
    return lib


def _c_build(lib, name: str, p, model) -> int:
    out = ctypes.c_void_p()
    args = (ctypes.byref(p), model, ctypes.byref(out)) if name in WITH_MODEL else (ctypes.byref(p), ctypes.byref(out))
    status = getattr(lib, f"llama_simplex_{name}")(*args)
    if status == 0:
        _core.adopt_sampler(out.value)  # freed when collected
    return status


@pytest.mark.parametrize("name", sorted(C_STRUCTS))
def test_c_api(lib, name, tiny_llm):
    """The C struct's fields are the table's C parameters, in order; the
    *_default_params() are the table's defaults; the constructor's checks are
    the table's ranges, with the parameter named in llama_simplex_last_error()."""
    spec, struct = BY_NAME[name], C_STRUCTS[name]
    table = params_on(spec, "c")
    fields = [f for f, _ in struct._fields_ if f != "draw"]
    assert fields == [c for p in table for c in C_FIELDS.get(p["name"], (p["name"],))]
    getattr(lib, f"llama_simplex_{name}_default_params").restype = struct
    d = getattr(lib, f"llama_simplex_{name}_default_params")()
    model = ctypes.c_void_p(ctypes.cast(tiny_llm.model, ctypes.c_void_p).value) if name in WITH_MODEL else None
    for p in table:
        if p["type"] == "support":
            assert (d.support, d.support_value) == (0, 0.0)
            continue
        field = C_FIELDS.get(p["name"], (p["name"],))[0]
        want = p["choices"].index(p["default"]) if p["type"] == "choice" else p["default"]
        got = getattr(d, field)
        assert got == (f32(want) if p["type"] == "f32" else want), (name, p["name"], got, want)
        if p["type"] in ("bool", "choice"):
            continue
        for value, allowed in probes(p):
            c = getattr(lib, f"llama_simplex_{name}_default_params")()
            _small(c, name)  # small enough to build on the tiny model
            if p["type"] in LIMITS and not LIMITS[p["type"]][0] <= value <= LIMITS[p["type"]][1]:
                continue  # the C type cannot carry it
            if p["type"] == "f32" and (abs(value) > F32_MAX or 0 < abs(value) < F32_TRUE_MIN):
                continue
            if name in WITH_MODEL and allowed and value > 8192:
                continue  # a rollout context this large: the model's limit (checked elsewhere), not the range
            setattr(c, field, value)
            status = _c_build(lib, name, c, model)
            if allowed:
                assert status == 0, (name, p["name"], value, lib.llama_simplex_last_error())
            else:
                assert status == 1, (name, p["name"], value)
                error = lib.llama_simplex_last_error().decode()
                assert error.startswith(f"{p['name']}: must be {p['range']}"), error


@pytest.mark.parametrize("spec", [s for s in SPECS if s["server_name"]], ids=lambda s: s["name"])
def test_llama_server_reader(spec):
    """llama-server's reader (the function the server runs on sampler_params):
    its keys, defaults, ranges and presets are the table's."""
    name = spec["server_name"]
    table = params_on(spec, "server")
    read = _core.read_sampler_params(name, {})
    assert list(read) == [p["name"] for p in table]
    for p in table:
        want = p["default"]
        assert read[p["name"]] == (f32(want) if p["type"] == "f32" else want), (name, p["name"])
        for value, allowed in probes(p):
            if allowed:
                got = _core.read_sampler_params(name, {p["name"]: value})[p["name"]]
                if p["type"] == "support":
                    assert _support_equal(got, value), (got, value)
                else:
                    assert got == (f32(value) if p["type"] == "f32" else value), (name, p["name"], value, got)
            else:
                with pytest.raises(ValueError, match=f"sampler '{name}': .*{p['name']}"):
                    _core.read_sampler_params(name, {p["name"]: value})
    with pytest.raises(ValueError, match="unknown parameter 'bogus'"):
        _core.read_sampler_params(name, {"bogus": 1})
    for preset in spec["presets"]:
        read = _core.read_sampler_params(name, {"preset": preset["name"]})
        for k, v in preset["values"].items():
            assert read[k] == (f32(v) if isinstance(v, float) else v), (name, preset["name"], k)
    if spec["presets"]:
        with pytest.raises(ValueError, match="preset: must be one of"):
            _core.read_sampler_params(name, {"preset": "bogus"})


def _support_equal(got: str, given: str) -> bool:
    if given == "full":
        return got == "full"
    gk, _, gv = got.partition(":")
    k, _, v = given.partition(":")
    return gk == k and float(gv) == float(v)


@pytest.mark.parametrize("cls", [ls.BestOfK, PowerSampler, BlockPowerSampler], ids=lambda c: c.__name__)
def test_presets(cls):
    """Python's presets are the table's, and each builds the values it names."""
    spec = spec_of(cls)
    assert list(cls.PRESETS) == [p["name"] for p in spec["presets"]]
    for preset in spec["presets"]:
        built = cls.preset(preset["name"])
        for k, v in preset["values"].items():
            assert getattr(built, k) == v, (cls.__name__, preset["name"], k)


def test_python_names_and_aliases():
    """sampler_from_name takes every canonical name and alias of the table."""
    for spec in SPECS:
        cls = next(c for c in CLASSES if spec_of(c) is spec)
        for name in (spec["name"], *spec["aliases"]):
            if cls is ls.Dist:
                continue  # not a decoder selectable by name
            assert type(ls.sampler_from_name(name)) is cls, name


def test_cli_samplers_lists_the_table(capsys):
    """`llama-simplex samplers` prints every sampler, alias, parameter with its
    default and range, and every preset, as the table has them."""
    assert cli.main(["samplers"]) == 0
    out = capsys.readouterr().out
    for spec in SPECS:
        assert spec["name"] in out
        for a in spec["aliases"]:
            assert a in out
        for p in params_on(spec, "python"):
            assert f"{p['name']}={p['default']!r}" in out, (spec["name"], p["name"])
            assert (", ".join(map(repr, p["choices"])) if p["type"] == "choice" else p["range"]) in out
        for preset in spec["presets"]:
            assert preset["name"] in out


def test_cli_takes_every_name_alias_and_preset():
    """`--sampler` takes every canonical name and alias of the table (but dist,
    not a decoder) and `--preset` every preset of the sampler it belongs to."""
    parser = cli._parser()
    for spec in SPECS:
        if spec["name"] == "dist":
            continue
        for name in (spec["name"], *spec["aliases"]):
            args = parser.parse_args(["generate", "--sampler", name, "x"])
            assert type(cli._sampler_from_args(args)) is type(ls.sampler_from_name(spec["name"]))
        for preset in spec["presets"]:
            args = parser.parse_args(["generate", "--sampler", spec["name"], "--preset", preset["name"], "x"])
            built = cli._sampler_from_args(args)
            assert all(getattr(built, k) == v for k, v in preset["values"].items()), (spec["name"], preset["name"])


def _out_of_range(p: Dict[str, Any]) -> Iterator[Any]:
    """The refused probes of a numeric parameter that every C type it goes to
    can carry (so that the C API sees the value itself, not a wrapped one)."""
    if p["type"] not in ("f32", "f64", "i32", "u32"):
        return
    for value, allowed in probes(p):
        if allowed:
            continue
        if p["type"] in LIMITS and not LIMITS[p["type"]][0] <= value <= LIMITS[p["type"]][1]:
            continue
        if p["type"] == "f32" and (abs(value) > F32_MAX or 0 < abs(value) < F32_TRUE_MIN):
            continue
        yield value


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s["name"])
def test_one_message_for_an_out_of_range_value(spec, lib, tiny_llm):
    """Issue 11: a value is checked once, by the table's one C++ check, so an
    out-of-range value of any parameter gets the same message from the Python
    class, the C API (llama_simplex_last_error) and llama-server's reader."""
    name = spec["name"]
    cls = next(c for c in CLASSES if spec_of(c) is spec)
    model = ctypes.c_void_p(ctypes.cast(tiny_llm.model, ctypes.c_void_p).value) if name in WITH_MODEL else None
    compared = 0
    for p in spec["params"]:
        for value in _out_of_range(p):
            messages = {}
            if "python" in p["surfaces"]:
                with pytest.raises(ValueError) as e:
                    cls(**{**CONTEXT.get((name, p["name"]), {}), p["name"]: value})
                messages["python"] = str(e.value)
            if "c" in p["surfaces"] and name in C_STRUCTS:
                c = getattr(lib, f"llama_simplex_{name}_default_params")()
                _small(c, name)
                setattr(c, C_FIELDS.get(p["name"], (p["name"],))[0], value)
                assert _c_build(lib, name, c, model) == 1, (name, p["name"], value)
                messages["c"] = lib.llama_simplex_last_error().decode()
            if "python" in p["surfaces"] and name in BUILT_BY_TABLE:
                with pytest.raises(ValueError) as e:
                    _core.make_sampler(name, {**CONTEXT.get((name, p["name"]), {}), p["name"]: value})
                messages["make_sampler"] = str(e.value)
            if "server" in p["surfaces"] and spec["server_name"]:
                prefix = f"sampler '{spec['server_name']}': "
                with pytest.raises(ValueError) as e:
                    _core.read_sampler_params(spec["server_name"], {p["name"]: value})
                assert str(e.value).startswith(prefix), str(e.value)
                messages["server"] = str(e.value)[len(prefix):]
            assert len(set(messages.values())) == 1, (name, p["name"], value, messages)
            assert next(iter(messages.values())).startswith(f"{p['name']}: must be {p['range']}"), messages
            compared += len(messages) > 1
    if any(_out_of_range(p) for p in spec["params"] if len(p["surfaces"]) > 1):
        assert compared, name


def _status(e: BaseException) -> int:
    return getattr(e, "status", getattr(e, "code", 0))


def test_serve_takes_every_name_alias_and_preset():
    """`serve`'s reader of a request's sampler (server.parse_sampler, no HTTP
    needed): every canonical name and alias builds the table's class (a
    sequence sampler that does not run inside llama.cpp's chain is refused
    with a 400 saying so), and every preset builds the values it names."""
    from llama_simplex import server
    big = server.Limits(max_steps=1000, max_horizon=1 << 20, max_rollout_cells=1 << 40)
    for spec in SPECS:
        if spec["name"] == "dist":
            continue  # not a decoder selectable by name
        cls = next(c for c in CLASSES if spec_of(c) is spec)
        for name in (spec["name"], *spec["aliases"]):
            if getattr(cls, "in_chain", True):
                assert type(server.parse_sampler(name, big)) is cls, name
                assert type(server.parse_sampler({"name": name}, big)) is cls, name
            else:
                with pytest.raises(server.BadRequest, match="is not served") as e:
                    server.parse_sampler(name, big)
                assert 400 <= _status(e.value) < 500
        for preset in spec["presets"]:
            if not getattr(cls, "in_chain", True):
                continue
            built = server.parse_sampler({"name": spec["name"], "preset": preset["name"]}, big)
            for k, v in preset["values"].items():
                assert getattr(built, k) == v, (spec["name"], preset["name"], k)
        if spec["presets"] and getattr(cls, "in_chain", True):
            with pytest.raises(server.BadRequest, match="preset") as e:
                server.parse_sampler({"name": spec["name"], "preset": "bogus"}, big)
            assert 400 <= _status(e.value) < 500


def test_serve_refuses_every_out_of_range_value():
    """`serve` refuses an out-of-range value of every parameter with a
    400-class error naming the parameter and its range."""
    from llama_simplex import server
    big = server.Limits(max_steps=1000, max_horizon=1 << 20, max_rollout_cells=1 << 40)
    for spec in SPECS:
        cls = next(c for c in CLASSES if spec_of(c) is spec)
        if spec["name"] == "dist" or not getattr(cls, "in_chain", True):
            continue
        for p in params_on(spec, "python"):
            for value, allowed in probes(p):
                if allowed:
                    continue
                request = {"name": spec["name"], **CONTEXT.get((spec["name"], p["name"]), {}), p["name"]: value}
                with pytest.raises(server.BadRequest) as e:
                    server.parse_sampler(request, big)
                assert 400 <= _status(e.value) < 500
                assert f"{p['name']}" in str(e.value), (spec["name"], p["name"], value, str(e.value))
                if p["type"] in ("f32", "f64", "i32", "u32") and value in list(_out_of_range(p)):
                    assert f"{p['name']}: must be {p['range']}" in str(e.value), str(e.value)


@pytest.mark.parametrize("name", BUILT_BY_TABLE)
def test_python_builds_through_the_table_constructor(name, monkeypatch):
    """Issue 11: a Python class's native sampler is built by the table's one
    constructor (_core.make_sampler: the C struct's defaults, the class's
    parameters through the table, the C API's check and constructor), the one
    llama-server's registry calls; no per-sampler constructor is left in _core."""
    cls = next(c for c in CLASSES if spec_of(c) is BY_NAME[name])
    calls = []
    real = _core.make_sampler
    monkeypatch.setattr(_core, "make_sampler", lambda n, params: calls.append((n, dict(params))) or real(n, params))
    obj = cls()
    obj.native(seed=1)
    assert calls == [(name, obj.params())]
    assert not hasattr(_core, f"make_{name}")


def test_make_sampler_refuses_what_it_cannot_build():
    with pytest.raises(ValueError, match="no sampler 'nope' in the table"):
        _core.make_sampler("nope", {})
    with pytest.raises(ValueError, match="sampler 'block_power' is not built from a C struct"):
        _core.make_sampler("block_power", {})
    with pytest.raises(ValueError, match=r"model: must not be NULL \(the rollouts run on it\)"):
        _core.make_sampler("power", {})
    with pytest.raises(ValueError, match=r"unknown parameter 'lam' \(allowed: temperature\)"):
        _core.make_sampler("softmax", {"lam": 1.0})
    with pytest.raises(ValueError, match="order: must be one of 'model', 'temperature', got 'x'"):
        _core.make_sampler("top_p", {"order": "x"})


def test_power_native_builds_through_the_table_constructor(tiny_llm, monkeypatch):
    """PowerSampler.native goes through make_sampler and the C API's power
    constructor, as llama-server's 'power' does: n_ctx, rollout_seed and
    max_tokens are checked by the table (n_ctx >= 64, as in C and llama-server)."""
    calls = []
    real = _core.make_sampler
    monkeypatch.setattr(_core, "make_sampler", lambda n, params, model=0: calls.append((n, dict(params))) or real(n, params, model))
    sampler = PowerSampler(candidates=2, rollouts=2, horizon=2)
    sampler.native(3, llm=tiny_llm, n_ctx=256, max_tokens=5)
    assert calls == [("power", {**sampler.params(), "n_ctx": 256, "rollout_seed": 3, "max_tokens": 5})]
    with pytest.raises(ValueError, match="n_ctx: must be >= 64, got 10"):
        sampler.native(3, llm=tiny_llm, n_ctx=10)
