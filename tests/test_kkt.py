"""Property tests: every simplex decoder solves its problem of docs/math.md §1.

For random logits (ties, -inf entries, scales from 1e-3 to 1e3) each kernel's
q must lie on the simplex, vanish outside its support, have the support the
definition gives, and satisfy the KKT conditions, checked in float64:

- entropy decoders (softmax, top-k, top-p, min-p): s/λ - log q is the same
  constant η on the support (Ω = Σ q log q, ∂Ω/∂q = log q + 1);
- sparsemax (Ω = ½‖q‖²): s/λ - q = τ on the support and s/λ <= τ outside;
- greedy (λ = 0): all mass on the maximum, lowest id on ties.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llama_simplex import _core

MODEL = "model"
TEMPERATURE = "temperature"

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

SUM_TOL = 1e-5
# q below this is (near-)denormal float32 or exp underflow: log q is not
# informative, so KKT equalities are checked only above it.
Q_FLOOR = 1e-30
# Support membership decided by float32 arithmetic in the kernel: a token whose
# float64 margin to the boundary is below this (relative) may fall either way.
BOUNDARY_REL_TOL = 1e-5
TOP_P_MASS_TOL = 1e-6
# One float32 rounding of a score z = logit / T is up to 2^-24 |z|. Whether the
# kernel rounds z (logit * (1/T)) before subtracting from it depends on the
# compiler contracting a*b - c into an FMA (-march=native does), so value
# checks allow a couple of such roundings of the largest score.
Z_ROUNDING = 2.0**-22

F32 = np.float32


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------

@st.composite
def logits_arrays(draw, min_size: int = 2, max_size: int = 300) -> np.ndarray:
    n = draw(st.integers(min_size, max_size))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["normal", "ties", "few", "uniform", "constant"]))
    if kind == "normal":
        x = rng.standard_normal(n)
    elif kind == "ties":
        x = np.round(rng.standard_normal(n), 1)
    elif kind == "few":
        x = rng.integers(0, 3, n).astype(np.float64)
    elif kind == "uniform":
        x = rng.uniform(-10.0, 10.0, n)
    else:
        x = np.full(n, rng.standard_normal())
    x *= draw(st.sampled_from([1e-3, 0.1, 1.0, 3.0, 30.0, 1e3]))
    x += draw(st.sampled_from([0.0, 0.0, 5.0, -50.0]))  # softmax is shift-invariant
    n_neg_inf = draw(st.integers(0, n - 1))
    if n_neg_inf and draw(st.booleans()):
        x[rng.choice(n, size=n_neg_inf, replace=False)] = -np.inf
    out = x.astype(F32)
    assert np.isfinite(out).any()
    return out


temperatures = st.sampled_from([0.1, 0.5, 0.7, 1.0, 1.5, 4.0])
orders = st.sampled_from([MODEL, TEMPERATURE])
probabilities = st.one_of(st.sampled_from([0.0, 0.1, 0.5, 0.9, 0.95, 0.999, 1.0]),
                          st.floats(0.0, 1.0, width=32))


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------

def rank_order(logits: np.ndarray) -> np.ndarray:
    """Token ids by higher logit first, lower id on ties (-inf last)."""
    return np.lexsort((np.arange(len(logits)), -logits.astype(np.float64)))


def scores(logits: np.ndarray, temperature: float) -> np.ndarray:
    """s/λ as the kernels compute it: logit * (1/T) in float32, then float64."""
    return (logits * (F32(1.0) / F32(temperature))).astype(np.float64)


def max_abs_finite(z: np.ndarray) -> float:
    return float(np.max(np.abs(z[np.isfinite(z)])))


def check_simplex(q: np.ndarray, support: np.ndarray, logits: np.ndarray):
    assert q.dtype == np.float32 and q.shape == logits.shape
    assert support.dtype == np.int32
    assert len(support) >= 1
    assert len(np.unique(support)) == len(support)
    assert np.all((support >= 0) & (support < len(q)))
    assert np.all(q >= 0.0)
    assert abs(q.astype(np.float64).sum() - 1.0) <= SUM_TOL
    outside = np.ones(len(q), dtype=bool)
    outside[support] = False
    assert np.all(q[outside] == 0.0)
    assert np.all(np.isfinite(logits[support])), "a -inf logit in the support"


def check_entropy_kkt(q: np.ndarray, support: np.ndarray, logits: np.ndarray, temperature: float):
    """s/λ - log q = η on the support (where q is representable), and q equals
    softmax(s/λ) restricted to the support."""
    z = scores(logits, temperature)[support]
    qs = q[support].astype(np.float64)
    live = qs > Q_FLOOR
    assert live.any()
    eta = z[live] - np.log(qs[live])
    scale = 1.0 + np.max(np.abs(z))
    # float32 z rounding (scale * 2^-24) and float32 q (a few ulp in log q).
    assert np.ptp(eta) <= 1e-4 + 1e-6 * scale, (np.ptp(eta), scale)
    ref = np.exp(z - z.max())
    ref /= ref.sum()
    np.testing.assert_allclose(qs, ref, atol=1e-6, rtol=1e-4)


def assert_support_equal(support: np.ndarray, expected: np.ndarray, may_differ: np.ndarray | None = None):
    got, want = set(support.tolist()), set(expected.tolist())
    diff = got ^ want
    allowed = set() if may_differ is None else set(may_differ.tolist())
    assert diff <= allowed, f"support differs on {sorted(diff)[:10]} (allowed: {sorted(allowed)[:10]})"


# --------------------------------------------------------------------------
# Decoders
# --------------------------------------------------------------------------

@SETTINGS
@given(logits_arrays())
def test_greedy(logits):
    q, support = _core.greedy(logits)
    check_simplex(q, support, logits)
    best = int(np.argmax(logits))  # first maximum: the lowest id among ties
    assert support.tolist() == [best]
    assert q[best] == 1.0


@SETTINGS
@given(logits_arrays(), temperatures)
def test_softmax(logits, t):
    q, support = _core.softmax(logits, t)
    check_simplex(q, support, logits)
    # No constraint: the support is every token with a finite logit.
    assert_support_equal(support, np.flatnonzero(np.isfinite(logits)))
    check_entropy_kkt(q, support, logits, t)


@SETTINGS
@given(logits_arrays(), st.integers(0, 320), temperatures)
def test_top_k(logits, k, t):
    q, support = _core.top_k(logits, k, t)
    check_simplex(q, support, logits)
    n_finite = int(np.isfinite(logits).sum())
    m = n_finite if k == 0 else min(k, n_finite)
    assert_support_equal(support, rank_order(logits)[:m])  # exact: ties go to lower ids
    check_entropy_kkt(q, support, logits, t)


@SETTINGS
@given(logits_arrays(), probabilities, temperatures, orders)
def test_top_p(logits, p, t, order):
    q, support = _core.top_p(logits, dict(p=p, temperature=t, order=order))
    check_simplex(q, support, logits)
    p32 = float(F32(p))
    ranked = rank_order(logits)
    finite = ranked[np.isfinite(logits[ranked])]
    if p32 >= 1.0:
        expected_size = len(finite)  # p = 1: the whole simplex
    else:
        chooser = scores(logits, t) if order == TEMPERATURE else logits.astype(np.float64)
        w = np.exp(chooser[finite] - chooser[finite].max())
        mass = np.cumsum(w / w.sum())  # p_t order; ties by lower id
        hit = np.flatnonzero(mass >= p32)
        expected_size = int(hit[0]) + 1 if len(hit) else len(finite)
        lo, hi = sorted([expected_size, len(support)])
        # The size may differ only where a prefix mass is within rounding of p.
        assert np.all(np.abs(mass[lo - 1: hi - 1] - p32) <= TOP_P_MASS_TOL), (len(support), expected_size)
    # Always a prefix of the (higher logit, lower id) order.
    assert_support_equal(support, finite[: len(support)])
    if p32 >= 1.0:
        assert len(support) == expected_size
    check_entropy_kkt(q, support, logits, t)


@SETTINGS
@given(logits_arrays(), st.one_of(st.sampled_from([0.0, 1e-12, 0.05, 0.1, 0.5, 1.0, 1.05]),
                                  st.floats(float(F32(1e-6)), 1.0, width=32)), temperatures)
def test_min_p(logits, p_min, t):
    q, support = _core.min_p(logits, p_min, t)
    check_simplex(q, support, logits)
    lg = logits.astype(np.float64)
    top = np.max(lg)
    with np.errstate(divide="ignore"):
        cut = top + np.log(np.float64(F32(p_min)))
    if cut > top:  # p_min > 1: only the maximum qualifies
        assert support.tolist() == [int(np.argmax(logits))]
    else:
        # C = {v : p_t(v) >= p_min max p_t} = {v : logit(v) >= max logit + log p_min}.
        expected = np.flatnonzero(np.isfinite(lg) & (lg >= cut))
        near = np.flatnonzero(np.isfinite(lg) & (np.abs(lg - cut) <= BOUNDARY_REL_TOL * (1.0 + abs(top))))
        assert_support_equal(support, expected, near)
    check_entropy_kkt(q, support, logits, t)


def sparsemax_reference(z: np.ndarray) -> tuple[np.ndarray, float]:
    """O(V log V): sort, prefix sums, the largest k with 1 + k z_(k) > Σ_{j<=k} z_(j)."""
    finite = np.isfinite(z)
    zs = np.sort(z[finite])[::-1]
    cs = np.cumsum(zs)
    k = np.arange(1, len(zs) + 1)
    kmax = int(k[1.0 + k * zs > cs][-1])
    tau = (cs[kmax - 1] - 1.0) / kmax
    q = np.where(finite, np.maximum(np.where(finite, z, 0.0) - tau, 0.0), 0.0)
    return q, tau


@SETTINGS
@given(logits_arrays(), temperatures)
def test_sparsemax(logits, t):
    q, support = _core.sparsemax(logits, t)
    check_simplex(q, support, logits)
    z = scores(logits, t)
    ref, tau = sparsemax_reference(z)
    zround = Z_ROUNDING * max_abs_finite(z)
    # Support: exactly {z > tau} of the sort-based reference, except a token
    # within float32 rounding of tau (its q is ~0 either way).
    near = np.flatnonzero(np.isfinite(z) & (np.abs(z - tau) <= zround))
    assert_support_equal(support, np.flatnonzero(ref > 0.0), near)
    # Values: 1e-6, plus the float32 rounding of the scores themselves.
    np.testing.assert_allclose(q, ref, atol=1e-6 + 2 * zround, rtol=0)
    # KKT: s/λ - q = τ on the support, s/λ <= τ outside.
    qs = q.astype(np.float64)
    tol = 1e-6 + 2 * zround
    assert np.all(np.abs(z[support] - qs[support] - tau) <= tol)
    outside = np.ones(len(q), dtype=bool)
    outside[support] = False
    assert np.all(z[outside] <= tau + tol)


@pytest.mark.parametrize("logits,t", [
    ([1.0, 0.5, 0.0, -3.0], 1.0),
    ([0.3, 0.3, 0.3], 1.0),
    ([2.0, 1.9, 1.7, -np.inf, 1.8], 0.5),
    ([5.0, 1.0], 1.0),  # one token: tau = 4
])
def test_sparsemax_small_examples(logits, t):
    """Moderate scores, where float32 rounding is far below 1e-6."""
    logits = np.array(logits, dtype=F32)
    q, support = _core.sparsemax(logits, t)
    ref, _ = sparsemax_reference(scores(logits, t))
    assert set(support.tolist()) == set(np.flatnonzero(ref > 0).tolist())
    np.testing.assert_allclose(q, ref, atol=1e-6, rtol=0)


@SETTINGS
@given(logits_arrays(), st.sampled_from(["softmax", "top_k", "top_p", "sparsemax"]))
def test_zero_temperature_is_greedy(logits, name):
    call = {
        "softmax": lambda l: _core.softmax(l, 0.0),
        "top_k": lambda l: _core.top_k(l, 5, 0.0),
        "top_p": lambda l: _core.top_p(l, dict(p=0.9, temperature=0.0, order=MODEL)),
        "sparsemax": lambda l: _core.sparsemax(l, 0.0),
    }[name]
    q, support = call(logits)
    q_g, support_g = _core.greedy(logits)
    assert support.tolist() == support_g.tolist()
    assert np.array_equal(q, q_g)


# --------------------------------------------------------------------------
# Native samplers: what they report agrees with the kernels
# --------------------------------------------------------------------------

SAMPLERS = {
    "greedy": (lambda: _core.make_sampler("greedy", {}), lambda l: _core.greedy(l)),
    "softmax": (lambda: _core.make_sampler("softmax", {"temperature": 0.7}), lambda l: _core.softmax(l, 0.7)),
    "top_k": (lambda: _core.make_sampler("top_k", {"k": 7, "temperature": 1.3}), lambda l: _core.top_k(l, 7, 1.3)),
    "top_p": (lambda: _core.make_sampler("top_p", {"p": 0.8, "temperature": 0.7, "order": "model"}), lambda l: _core.top_p(l, dict(p=0.8, temperature=0.7, order=MODEL))),
    "top_p_t": (lambda: _core.make_sampler("top_p", {"p": 0.8, "temperature": 0.7, "order": "temperature"}), lambda l: _core.top_p(l, dict(p=0.8, temperature=0.7, order=TEMPERATURE))),
    "min_p": (lambda: _core.make_sampler("min_p", {"p_min": 0.1, "temperature": 1.0}), lambda l: _core.min_p(l, 0.1, 1.0)),
    "sparsemax": (lambda: _core.make_sampler("sparsemax", {"temperature": 1.0}), lambda l: _core.sparsemax(l, 1.0)),
}


@SETTINGS
@given(logits_arrays(), st.sampled_from(sorted(SAMPLERS)))
def test_sampler_matches_kernel(logits, name):
    make, kernel = SAMPLERS[name]
    ids, lg, p, _, is_sorted = make().apply(logits)
    q, support = kernel(logits)
    assert ids.tolist() == support.tolist()
    np.testing.assert_array_equal(p, q[support])
    # The logits left for the next sampler are log q (softmax of them is q),
    # up to the float32 rounding of scores of this size.
    live = p > Q_FLOOR
    tol = 1e-5 + 4 * Z_ROUNDING * max_abs_finite(logits.astype(np.float64) / 0.7)
    assert np.all(np.abs(lg[live].astype(np.float64) - np.log(p[live].astype(np.float64))) <= tol)
    if is_sorted:  # llama.cpp samplers downstream trust this flag
        assert np.all(np.diff(p.astype(np.float64)) <= 0.0)


# --------------------------------------------------------------------------
# Invalid input
# --------------------------------------------------------------------------

KERNELS = {
    "greedy": lambda l: _core.greedy(l),
    "softmax": lambda l: _core.softmax(l, 1.0),
    "top_k": lambda l: _core.top_k(l, 3, 1.0),
    "top_p": lambda l: _core.top_p(l, dict(p=0.9, temperature=1.0, order=MODEL)),
    "top_p_t": lambda l: _core.top_p(l, dict(p=0.9, temperature=0.7, order=TEMPERATURE)),
    "min_p": lambda l: _core.min_p(l, 0.1, 1.0),
    "sparsemax": lambda l: _core.sparsemax(l, 1.0),
    "softmax_t0": lambda l: _core.softmax(l, 0.0),
    "top_k_t0": lambda l: _core.top_k(l, 3, 0.0),
    "top_p_t0": lambda l: _core.top_p(l, dict(p=0.9, temperature=0.0, order=MODEL)),
    "min_p_t0": lambda l: _core.min_p(l, 0.1, 0.0),
    "sparsemax_t0": lambda l: _core.sparsemax(l, 0.0),
}


@pytest.mark.parametrize("name", sorted(KERNELS))
@settings(SETTINGS, max_examples=30)
@given(logits=logits_arrays(), where=st.integers(0, 299))
def test_nan_raises(name, logits, where):
    logits = logits.copy()
    logits[where % len(logits)] = np.nan
    with pytest.raises(ValueError):
        KERNELS[name](logits)


@pytest.mark.parametrize("n", [1, 2, 300])
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_all_neg_inf_raises(name, n):
    with pytest.raises(ValueError):
        KERNELS[name](np.full(n, -np.inf, dtype=F32))


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sampler_invalid_input_raises(name):
    make, _ = SAMPLERS[name]
    smpl = make()
    with pytest.raises(ValueError):
        smpl.apply(np.array([0.0, np.nan, 1.0], dtype=F32))
    with pytest.raises(ValueError):
        smpl.apply(np.full(4, -np.inf, dtype=F32))
    # A failed apply leaves the sampler usable.
    ids, _, p, _, _ = smpl.apply(np.array([0.0, 1.0], dtype=F32))
    assert 1 in ids.tolist()
