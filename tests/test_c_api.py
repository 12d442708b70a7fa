"""The C API (llama_simplex.h) and its packaging: a C program built with
pkg-config and with find_package(llama_simplex), run on a tiny model."""

from __future__ import annotations

import ctypes
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import llama_simplex as ls

ROOT = Path(__file__).resolve().parents[1]
PKG = Path(ls.__file__).parent
EXAMPLE = ROOT / "examples" / "c"


def _check_output(out: str, prompt: str) -> None:
    assert "bad p: invalid argument: p: must be in [0, 1], got 1.5" in out
    assert "version 0.1.0" in out
    assert prompt in out


@pytest.mark.skipif(shutil.which("pkg-config") is None or shutil.which("cc") is None, reason="needs pkg-config and cc")
def test_c_example_with_pkg_config(tmp_path, tiny_model_path):
    env = dict(os.environ, PKG_CONFIG_PATH=str(PKG / "lib" / "pkgconfig"))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "llama_simplex"], env=env, capture_output=True,
                           text=True, check=True).stdout.split()
    exe = tmp_path / "simple"
    subprocess.run(["cc", "-std=c11", "-Wall", "-Werror", str(EXAMPLE / "simple.c"), "-o", str(exe), *flags],
                   check=True, capture_output=True, text=True)
    run = subprocess.run([str(exe), str(tiny_model_path), "abc", "8"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    _check_output(run.stdout, "abc")


@pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake")
def test_c_example_with_find_package(tmp_path, tiny_model_path):
    build = tmp_path / "build"
    subprocess.run(["cmake", "-S", str(EXAMPLE), "-B", str(build), f"-DCMAKE_PREFIX_PATH={PKG}"], check=True,
                   capture_output=True, text=True)
    subprocess.run(["cmake", "--build", str(build)], check=True, capture_output=True, text=True)
    run = subprocess.run([str(build / "simple"), str(tiny_model_path), "cab", "6"], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    _check_output(run.stdout, "cab")


class DrawParams(ctypes.Structure):
    _fields_ = [("draw", ctypes.c_bool), ("seed", ctypes.c_uint32)]


# The C types of the table's parameter types; a choice is an index, a bool for two names.
CTYPES = {"f32": ctypes.c_float, "f64": ctypes.c_double, "i32": ctypes.c_int32, "u32": ctypes.c_uint32,
          "bool": ctypes.c_bool}


def c_struct(spec: dict) -> type:
    """The ctypes mirror of a sampler's C parameter struct, made from the table
    (its C-surface parameters in order, then `draw`): a parameter added to a
    list reaches it with no edit here. test_ctypes_structs_have_the_headers_layout
    checks it against the compiled header's offsets and sizes."""
    fields = []
    for p in spec["params"]:
        if "c" not in p["surfaces"]:
            continue
        if p["type"] == "support":
            fields += [(p["field"], ctypes.c_int32), (p["field"] + "_value", ctypes.c_double)]
        elif p["type"] == "choice":
            fields.append((p["field"], {1: ctypes.c_bool, 4: ctypes.c_int32}[p["c_layout"]["size"]]))
        else:
            fields.append((p["field"], CTYPES[p["type"]]))
    return type(f"llama_simplex_{spec['name']}_params", (ctypes.Structure,), {"_fields_": fields + [("draw", DrawParams)]})


# Every sampler's C struct (those with C parameters), by table name.
C_STRUCTS = {s["name"]: c_struct(s) for s in ls._core.sampler_specs() if any("c" in p["surfaces"] for p in s["params"])}
SoftmaxParams, SparsemaxParams, TopKParams, TopPParams, MinPParams = (
    C_STRUCTS[n] for n in ("softmax", "sparsemax", "top_k", "top_p", "min_p"))
BestOfKParams, ObjectiveParams, PowerParams, SmcParams = (C_STRUCTS[n] for n in ("best_of_k", "objective", "power", "smc"))


def test_ctypes_structs_have_the_headers_layout():
    """The generated mirrors lie as the compiled header's structs do: each
    field at the offset and with the size offsetof / sizeof give in specs.cpp
    (the table's c_layout), and the struct's size; with
    test_one_definition.py::test_c_structs_are_the_tables_c_parameters
    (the header's fields and C types, preprocessed) they are the header's."""
    assert C_STRUCTS
    for spec in ls._core.sampler_specs():
        if spec["name"] not in C_STRUCTS:
            continue
        struct = C_STRUCTS[spec["name"]]
        for p in spec["params"]:
            if "c" not in p["surfaces"]:
                assert p["c_layout"] is None, (spec["name"], p["name"])
                continue
            layout = p["c_layout"]
            field = getattr(struct, p["field"])
            assert (field.offset, field.size) == (layout["offset"], layout["size"]), (spec["name"], p["name"])
            assert ctypes.sizeof(struct) == layout["struct_size"], spec["name"]
            if p["type"] == "support":
                assert getattr(struct, p["field"] + "_value").offset == layout["value_offset"]


@pytest.fixture(scope="module")
def lib():
    lib = ctypes.CDLL(str(PKG / "lib" / "libllama_simplex.so"))
    lib.llama_simplex_last_error.restype = ctypes.c_char_p
    lib.llama_simplex_version.restype = ctypes.c_char_p
    lib.llama_simplex_top_k_default_params.restype = TopKParams
    lib.llama_simplex_best_of_k_default_params.restype = BestOfKParams
    return lib


def test_version_and_defaults(lib):
    assert lib.llama_simplex_version() == b"0.1.0"
    d = lib.llama_simplex_top_k_default_params()
    assert (d.k, d.temperature, d.draw.draw) == (40, 1.0, False)
    b = lib.llama_simplex_best_of_k_default_params()
    assert (b.k_samples, b.steps, b.m) == (8, 5, 8) and abs(b.beta - 0.01) < 1e-7 and abs(b.lam - 0.1) < 1e-7


def test_sampler_status_strings(lib):
    lib.llama_simplex_sampler_status_string.restype = ctypes.c_char_p
    assert lib.llama_simplex_sampler_status_string(0) == b"ok"
    assert b"NaN" in lib.llama_simplex_sampler_status_string(1)
    assert b"context too small" in lib.llama_simplex_sampler_status_string(4)
    assert lib.llama_simplex_sampler_status_string(99) == b"unknown status"
    assert lib.llama_simplex_sampler_status_string(-1) == b"unknown status"


@pytest.mark.parametrize("field, value, words", [
    ("k", -1, b"k: must be >= 0"),
    ("temperature", -2.0, b"temperature: must be finite and >= 0"),
    ("temperature", float("nan"), b"temperature: must be finite"),
])
def test_bad_parameters_return_a_status_and_a_message(lib, field, value, words):
    p = lib.llama_simplex_top_k_default_params()
    setattr(p, field, value)
    out = ctypes.c_void_p(123)
    assert lib.llama_simplex_top_k(ctypes.byref(p), ctypes.byref(out)) == 1
    assert out.value is None
    assert words in lib.llama_simplex_last_error()


def test_null_pointers_and_a_good_sampler(lib):
    out = ctypes.c_void_p()
    assert lib.llama_simplex_top_k(None, ctypes.byref(out)) == 2
    b = lib.llama_simplex_best_of_k_default_params()
    b.step_size = 0.0
    assert lib.llama_simplex_best_of_k(ctypes.byref(b), ctypes.byref(out)) == 1
    assert b"step_size" in lib.llama_simplex_last_error()
    b = lib.llama_simplex_best_of_k_default_params()
    assert lib.llama_simplex_best_of_k(ctypes.byref(b), ctypes.byref(out)) == 0 and out.value
    assert lib.llama_simplex_last_error() == b""
    import llama_cpp
    smpl = ctypes.cast(out, llama_cpp.llama_sampler_p_ctypes)
    assert llama_cpp.llama_sampler_name(smpl) == b"simplex-best-of-k"
    llama_cpp.llama_sampler_free(smpl)


def test_smc_constructor(lib, tiny_llm):
    """llama_simplex_smc: the table's defaults, errors naming the parameter (a
    context too small for the particles among them, before any work), and a
    chain member that emits the completion the particles drew."""
    import numpy as np
    lib.llama_simplex_smc_default_params.restype = SmcParams
    p = lib.llama_simplex_smc_default_params()
    assert (p.alpha, p.particles, p.ramp, p.ess_threshold, p.block, p.rounds, p.n_ctx, p.max_tokens) == \
        (4.0, 8, 0, 0.5, 1, 1, 8192, 256)
    out = ctypes.c_void_p()
    model = ctypes.c_void_p(ls.handles.model_address(tiny_llm))
    assert lib.llama_simplex_smc(ctypes.byref(p), None, ctypes.byref(out)) == 2  # NULL model
    for field, value, message in [("particles", 0, b"particles: must be in [1, 256]"),
                                  ("ess_threshold", 1.5, b"ess_threshold: must be in [0, 1]"),
                                  ("max_tokens", 0, b"max_tokens: must be >= 1, got 0"),
                                  ("n_ctx", 1000, b"n_ctx: must be >= 2050")]:
        q = lib.llama_simplex_smc_default_params()
        setattr(q, field, value)
        assert lib.llama_simplex_smc(ctypes.byref(q), model, ctypes.byref(out)) == 1, field
        assert message in lib.llama_simplex_last_error(), lib.llama_simplex_last_error()
    q = lib.llama_simplex_smc_default_params()
    q.particles, q.max_tokens, q.n_ctx, q.rollout_seed = 4, 3, 256, 7
    assert lib.llama_simplex_smc(ctypes.byref(q), model, ctypes.byref(out)) == 0
    native = ls._core.adopt_sampler(out.value)
    prompt = [1, 3]
    for t in prompt:
        native.accept(t)
    # The completion the particles drew with the same seed, emitted one token at a time.
    s = ls.SMCPowerSampler(particles=4)
    expect = s.run(tiny_llm, prompt, 3, 7, False).tokens
    got = []
    for _ in range(len(expect)):
        ids, _lg, probs, _s, _o = native.apply(np.zeros(tiny_llm.n_vocab(), np.float32))
        assert list(probs) == [1.0]
        got.append(int(ids[0]))
        native.accept(int(ids[0]))
    assert got == expect


def test_objective_and_power_constructors(lib, tiny_llm):
    import llama_cpp
    import numpy as np
    lib.llama_simplex_objective_default_params.restype = ObjectiveParams
    lib.llama_simplex_power_default_params.restype = PowerParams
    o = lib.llama_simplex_objective_default_params()
    o.support, o.support_value = 1, 0.0
    out = ctypes.c_void_p()
    assert lib.llama_simplex_objective(ctypes.byref(o), ctypes.byref(out)) == 1
    assert b"support_value: top-k needs k >= 1" in lib.llama_simplex_last_error()
    o = lib.llama_simplex_objective_default_params()
    o.lam, o.entropy, o.kl, o.l2, o.steps = 0.5, 1.0, 0.0, 1.0, 20
    assert lib.llama_simplex_objective(ctypes.byref(o), ctypes.byref(out)) == 0
    native = ls._core.adopt_sampler(out.value)
    ids, _lg, p, _s, _o = native.apply(np.array([0.0, 1.0, 2.0, 3.0], np.float32))
    q, _ = ls.kernels.decode(np.array([0.0, 1.0, 2.0, 3.0], np.float32),
                             ls.Objective(lam=0.5, entropy=1.0, kl=0.0, l2=1.0, steps=20))
    np.testing.assert_allclose(p, q[ids], rtol=1e-5)

    pw = lib.llama_simplex_power_default_params()
    assert (pw.candidates, pw.rollouts, pw.horizon, pw.jackknife) == (8, 8, 64, True)
    assert lib.llama_simplex_power(ctypes.byref(pw), None, ctypes.byref(out)) == 2
    assert b"model" in lib.llama_simplex_last_error()
    pw.rollouts = 0
    model = ctypes.c_void_p(ctypes.cast(tiny_llm.model, ctypes.c_void_p).value)
    assert lib.llama_simplex_power(ctypes.byref(pw), model, ctypes.byref(out)) == 1
    assert b"rollouts: must be in [1, 255]" in lib.llama_simplex_last_error()
    pw.rollouts, pw.candidates, pw.horizon, pw.n_ctx = 2, 4, 3, 512
    assert lib.llama_simplex_power(ctypes.byref(pw), model, ctypes.byref(out)) == 0
    native = ls._core.adopt_sampler(out.value)
    assert native.name == "simplex-power"


def test_power_length_limit_through_the_c_api(lib, tiny_llm):
    """max_tokens (what llama-server's `n_predict` should be) reaches the C
    sampler: with one token left there is no future, so its weights are p^α
    over the K candidates; without a limit the rollouts change them. A
    negative limit is refused by name."""
    import llama_cpp
    import numpy as np
    lib.llama_simplex_power_default_params.restype = PowerParams
    model = ctypes.c_void_p(ctypes.cast(tiny_llm.model, ctypes.c_void_p).value)
    prompt = tiny_llm.tokenize(b"abc abc")
    tiny_llm.reset()
    tiny_llm.eval(prompt)
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(tiny_llm.ctx, -1),
                                   shape=(tiny_llm.n_vocab(),)).copy()

    def weights(max_tokens):
        pw = lib.llama_simplex_power_default_params()
        assert pw.max_tokens == 0
        pw.candidates, pw.rollouts, pw.horizon, pw.n_ctx, pw.max_tokens = 6, 4, 8, 1024, max_tokens
        out = ctypes.c_void_p()
        status = lib.llama_simplex_power(ctypes.byref(pw), model, ctypes.byref(out))
        if status != 0:
            return status, lib.llama_simplex_last_error()
        native = ls._core.adopt_sampler(out.value)
        for t in prompt:
            native.accept(t)
        ids, _lg, p, _sel, _sorted = native.apply(logits)
        return np.asarray(ids), np.asarray(p, np.float64)

    ids, p = weights(1)
    q = np.exp(4.0 * (logits[ids].astype(np.float64) - logits.max()))
    np.testing.assert_allclose(p, q / q.sum(), rtol=1e-5)
    ids_free, p_free = weights(0)
    assert set(ids_free) == set(ids) and np.abs(p_free - p).max() > 1e-3
    status, error = weights(-1)
    assert status == 1 and b"max_tokens: must be >= 0 (0: no limit), got -1" in error


SUBNORMAL = 1.401298464324817e-45  # the smallest positive float32


def _c_sampler(lib, kind: str, **fields):
    """A sampler built through the C API from the default parameters with `fields` set, adopted by _core."""
    getattr(lib, f"llama_simplex_{kind}_default_params").restype = C_STRUCTS[kind]
    p = getattr(lib, f"llama_simplex_{kind}_default_params")()
    for k, v in fields.items():
        setattr(p, k, v)
    out = ctypes.c_void_p()
    status = getattr(lib, f"llama_simplex_{kind}")(ctypes.byref(p), ctypes.byref(out))
    assert status == 0, lib.llama_simplex_last_error()
    return ls._core.adopt_sampler(out.value)


@pytest.mark.parametrize("kind, fields", [
    ("softmax", {}), ("top_k", {}), ("top_p", {}), ("top_p", {"order_by_temperature": True}), ("min_p", {}),
    ("sparsemax", {}), ("best_of_k", {}), ("objective", {}),
    ("objective", {"reference_temperature": SUBNORMAL, "temperature": 1.0}),
])
def test_subnormal_temperatures_give_the_limit(lib, kind, fields):
    """main accepted a subnormal temperature and apply then wrote NaN (or q = 0):
    now every constructor that takes one gives the T -> 0 limit, equal mass on the tied maxima."""
    import numpy as np
    fields = {"temperature": SUBNORMAL, **fields}
    native = _c_sampler(lib, kind, **fields)
    x = np.array([1.0, 3.0, -2.0, 3.0, 3.0, 0.0], np.float32)
    ids, _lg, p, _sel, _sorted = native.apply(x)
    q = np.zeros(x.size)
    q[ids] = p
    np.testing.assert_allclose(q, [0, 1 / 3, 0, 1 / 3, 1 / 3, 0], rtol=1e-6, atol=1e-7)


def test_top_p_and_min_p_thresholds_are_doubles(lib):
    """main: p was a float (0.3f > 0.3), so 10 equal logits kept 4 tokens."""
    import numpy as np
    ids = _c_sampler(lib, "top_p", p=0.3).apply(np.zeros(10, np.float32))[0]
    assert len(ids) == 3
    ids = _c_sampler(lib, "objective", support=2, support_value=0.3).apply(np.zeros(10, np.float32))[0]
    assert len(ids) == 3
    x = np.array([1e8, 99999992.0], np.float32)
    assert _c_sampler(lib, "min_p", p_min=float(np.exp(-4.5))).apply(x)[0].tolist() == [0]


def test_inf_logit_status(lib):
    import numpy as np
    lib.llama_simplex_sampler_status_string.restype = ctypes.c_char_p
    assert b"+inf" in lib.llama_simplex_sampler_status_string(6)
    native = _c_sampler(lib, "softmax")
    with pytest.raises(ValueError, match=r"\+inf"):
        native.apply(np.array([0.0, np.inf], np.float32))
    assert lib.llama_simplex_sampler_status(ctypes.c_void_p(native.address)) == 6


def _apply(smpl, logits):
    """llama_sampler_apply on logits with ids 0..n-1; returns (ids, p, selected)."""
    import llama_cpp
    n = len(logits)
    data = (llama_cpp.llama_token_data * n)(*[llama_cpp.llama_token_data(i, float(l), 0.0) for i, l in enumerate(logits)])
    arr = llama_cpp.llama_token_data_array(data, n, -1, False)
    llama_cpp.llama_sampler_apply(smpl, ctypes.byref(arr))
    return [data[i].id for i in range(arr.size)], [data[i].p for i in range(arr.size)], arr.selected


def test_ensure_draw_makes_any_chain_select(lib, tiny_llm, tiny_text):
    """llama_sampler_sample aborts the process on a chain that selects nothing
    (main had no way to give a chain of ours its draw but a hand-added dist)."""
    import llama_cpp
    lib.llama_simplex_ensure_draw.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    tiny_llm.reset()
    tiny_llm.eval(tiny_llm.tokenize(tiny_text.encode()))
    p = lib.llama_simplex_top_k_default_params()
    p.k = 5
    picks = []
    for seed in range(8):
        out = ctypes.c_void_p()
        assert lib.llama_simplex_top_k(ctypes.byref(p), ctypes.byref(out)) == 0
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_k(10))  # foreign, first
        llama_cpp.llama_sampler_chain_add(chain, ctypes.cast(out, llama_cpp.llama_sampler_p_ctypes))
        assert lib.llama_simplex_ensure_draw(ctypes.cast(chain, ctypes.c_void_p), seed) == 0
        assert llama_cpp.llama_sampler_chain_n(chain) == 2  # the last member (ours) draws
        picks.append(llama_cpp.llama_sampler_sample(chain, tiny_llm.ctx, -1))
        assert lib.llama_simplex_sampler_status(ctypes.cast(chain, ctypes.c_void_p)) == 0
        llama_cpp.llama_sampler_free(chain)
    assert len(set(picks)) > 1 and all(0 <= t < tiny_llm.n_vocab() for t in picks)
    # A chain ending in a foreign non-selecting sampler gets a seeded dist of ours appended.
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_k(3))
    assert lib.llama_simplex_ensure_draw(ctypes.cast(chain, ctypes.c_void_p), 7) == 0
    assert llama_cpp.llama_sampler_chain_n(chain) == 2
    assert 0 <= llama_cpp.llama_sampler_sample(chain, tiny_llm.ctx, -1) < tiny_llm.n_vocab()
    llama_cpp.llama_sampler_free(chain)
    # Not ours and not a chain: an error that names the argument.
    lone = llama_cpp.llama_sampler_init_top_k(3)
    assert lib.llama_simplex_ensure_draw(ctypes.cast(lone, ctypes.c_void_p), 7) == 1
    assert b"smpl: must be a sampler of llama_simplex or a llama.cpp chain" in lib.llama_simplex_last_error()
    llama_cpp.llama_sampler_free(lone)
    assert lib.llama_simplex_ensure_draw(None, 7) == 2


def test_set_context_params(lib, tiny_llm):
    """llama_simplex_set_context_params: the samplers that make contexts of
    their own (SMC here, in a chain) take the caller's numerics; others take
    none; NULL arguments are errors naming them."""
    import llama_cpp
    lib.llama_simplex_smc_default_params.restype = SmcParams
    lib.llama_simplex_set_context_params.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32)]
    q = lib.llama_simplex_smc_default_params()
    q.particles, q.max_tokens, q.n_ctx = 2, 3, 256
    out = ctypes.c_void_p()
    assert lib.llama_simplex_smc(ctypes.byref(q), ctypes.c_void_p(ls.handles.model_address(tiny_llm)),
                                 ctypes.byref(out)) == 0
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_k(10))
    llama_cpp.llama_sampler_chain_add(chain, ctypes.cast(out, llama_cpp.llama_sampler_p_ctypes))
    params = ctypes.addressof(tiny_llm.context_params)
    n = ctypes.c_int32(-1)
    assert lib.llama_simplex_set_context_params(ctypes.cast(chain, ctypes.c_void_p), params, ctypes.byref(n)) == 0
    assert n.value == 1
    lone = llama_cpp.llama_sampler_init_top_k(3)
    assert lib.llama_simplex_set_context_params(ctypes.cast(lone, ctypes.c_void_p), params, ctypes.byref(n)) == 0
    assert n.value == 0
    assert lib.llama_simplex_set_context_params(ctypes.cast(lone, ctypes.c_void_p), params, None) == 0
    assert lib.llama_simplex_set_context_params(None, params, ctypes.byref(n)) == 2
    assert b"smpl: must not be NULL" in lib.llama_simplex_last_error()
    assert lib.llama_simplex_set_context_params(ctypes.cast(lone, ctypes.c_void_p), None, None) == 2
    assert b"params: must not be NULL" in lib.llama_simplex_last_error()
    llama_cpp.llama_sampler_free(lone)
    llama_cpp.llama_sampler_free(chain)


def test_sampler_status_reports_a_degenerate_q(lib):
    """Extreme temperatures: q is a distribution (status 0) or status 5 with a
    valid selection; main returned NaN q with status 0."""
    import llama_cpp
    lib.llama_simplex_sampler_status_string.restype = ctypes.c_char_p
    assert b"not a distribution" in lib.llama_simplex_sampler_status_string(5)
    logits = [3e4, 1.0, -2.0, 3e4 - 1e-3, 0.5]
    for t in (1e-9, 1e-38, 1e-45):
        p = SparsemaxParams(t, DrawParams(True, 1))
        out = ctypes.c_void_p()
        assert lib.llama_simplex_sparsemax(ctypes.byref(p), ctypes.byref(out)) == 0
        smpl = ctypes.cast(out, llama_cpp.llama_sampler_p_ctypes)
        ids, q, selected = _apply(smpl, logits)
        status = lib.llama_simplex_sampler_status(out)
        assert 0 <= selected < len(ids)
        if status == 0:
            assert all(math.isfinite(x) and x >= 0 for x in q) and abs(sum(q) - 1) < 1e-5, (t, q)
        else:
            assert status == 5 and ids and q == [1.0], (t, status, q)
        llama_cpp.llama_sampler_free(smpl)


def test_steps_are_bounded(lib):
    b = lib.llama_simplex_best_of_k_default_params()
    b.steps = 1001
    out = ctypes.c_void_p()
    assert lib.llama_simplex_best_of_k(ctypes.byref(b), ctypes.byref(out)) == 1
    assert b"steps: must be in [0, 1000], got 1001" in lib.llama_simplex_last_error()
    lib.llama_simplex_objective_default_params.restype = ObjectiveParams
    o = lib.llama_simplex_objective_default_params()
    o.steps = 1000
    assert lib.llama_simplex_objective(ctypes.byref(o), ctypes.byref(out)) == 0
    import llama_cpp
    llama_cpp.llama_sampler_free(ctypes.cast(out, llama_cpp.llama_sampler_p_ctypes))
    o.steps = 100_000
    assert lib.llama_simplex_objective(ctypes.byref(o), ctypes.byref(out)) == 1
    assert b"steps: must be in [0, 1000]" in lib.llama_simplex_last_error()
