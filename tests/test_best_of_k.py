"""Best-of-K (docs/math.md §2) through the native llama_sampler: parameters, the
closed form without coverage, agreement with ls.kernels.solve, a statistical
coverage test, and generation on the tiny model.

In the sampler: s = logits / T, p = softmax(logits) over the support
(reference temperature 1), w = coverage weights on the top-m tokens of p, and

    q* = argmax_q <q, s> - lam KL(q ‖ p) + lam beta U_K(q),  U_K(q) = Σ w_v [1 - (1 - q_v)^K].
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import llama_simplex as ls

EPS32 = 2.0**-24

# --------------------------------------------------------------------------
# 1. Parameters
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,name", [
    (dict(beta=-0.01), "beta"),
    (dict(lam=-0.1), "lam"),
    (dict(k_samples=0), "k_samples"),
    (dict(steps=-1), "steps"),
    (dict(step_size=0.0), "step_size"),
    (dict(step_size=-1.0), "step_size"),
    (dict(weights="x"), "weights"),
    (dict(m=0), "m"),
    (dict(support="top-k:0"), "support"),
    (dict(support="top-p:1.5"), "support"),
    (dict(support="foo"), "support"),
    (dict(temperature=0.0), "temperature"),
    (dict(temperature=-1.0), "temperature"),
    (dict(tol=-1e-6), "tol"),
    (dict(beta=float("nan")), "beta"),
    (dict(lam=float("inf")), "lam"),
])
def test_constructor_rejects_bad_values(kwargs, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        ls.BestOfK(**kwargs)


@pytest.mark.parametrize("kwargs,name", [
    (dict(k_samples=2.5), "k_samples"),
    (dict(steps=1.0), "steps"),
    (dict(beta="0.1"), "beta"),
    (dict(m=True), "m"),
])
def test_constructor_rejects_bad_types(kwargs, name):
    with pytest.raises(TypeError, match=rf"\b{name}\b"):
        ls.BestOfK(**kwargs)


def test_presets_are_the_papers_settings():
    assert {name: (b.beta, b.lam) for name in ("paper-0.01", "paper-0.02", "paper-0.05")
            for b in [ls.BestOfK.preset(name)]} == {
        "paper-0.01": (0.01, 0.1), "paper-0.02": (0.02, 0.2), "paper-0.05": (0.05, 0.5)}
    b = ls.BestOfK.preset("paper-0.02", temperature=0.5, steps=7)
    assert (b.beta, b.lam, b.temperature, b.steps) == (0.02, 0.2, 0.5, 7)
    assert ls.BestOfK.preset("paper-0.05", lam=0.3).lam == 0.3  # an override wins
    with pytest.raises(ValueError, match=r"\bpreset\b"):
        ls.BestOfK.preset("paper-0.03")
    with pytest.raises(ValueError, match=r"\bbeta\b"):
        ls.BestOfK.preset("paper-0.01", beta=-1.0)


def test_defaults_and_equivalent_objective():
    b = ls.BestOfK()
    assert (b.k_samples, b.beta, b.lam, b.steps, b.step_size, b.weights, b.m, b.support, b.temperature) == \
        (8, 0.01, 0.1, 5, 1.0, "top-m", 8, "full", 1.0)
    o = ls.BestOfK(k_samples=4, beta=0.3, lam=0.7, steps=9, step_size=0.5, weights="rank", m=5,
                   support="top-k:20", temperature=0.6, tol=1e-4).objective()
    assert isinstance(o, ls.Objective)
    assert (o.lam, o.entropy, o.kl, o.l2, o.beta, o.k_samples, o.weights, o.m, o.support, o.temperature,
            o.reference_temperature, o.steps, o.step_size, o.tol) == \
        (0.7, 0.0, 1.0, 0.0, 0.3, 4, "rank", 5, "top-k:20", 0.6, 1.0, 9, 0.5, 1e-4)
    # The two build the same decoder.
    logits = np.random.default_rng(0).normal(size=300).astype(np.float32) * 2
    qa, _ = ls.kernels.decode(logits, ls.BestOfK(beta=0.3, lam=0.7, temperature=0.6, support="top-k:20"))
    qb, _ = ls.kernels.decode(logits, ls.BestOfK(beta=0.3, lam=0.7, temperature=0.6, support="top-k:20").objective())
    np.testing.assert_array_equal(qa, qb)


# --------------------------------------------------------------------------
# 2. beta = 0: the closed form q ∝ p exp(s / lam)
# --------------------------------------------------------------------------

def _closed_form64(logits, lam, t, keep):
    """log q = log p + s/lam - log Z = logits (1 + 1/(T lam)) - const on the support."""
    theta = np.where(keep, logits.astype(np.float64) * (1.0 + 1.0 / (t * lam)), -np.inf)
    hi = theta[keep].max()
    log_z = hi + math.log(np.sum(np.exp(theta[keep] - hi)))
    return np.exp(theta - log_z), theta, log_z


@pytest.mark.parametrize("lam,t", [(0.1, 1.0), (0.5, 0.7), (1.0, 1.5)])
@pytest.mark.parametrize("support", ["full", "top-k:50"])
def test_beta_zero_is_the_closed_form(lam, t, support):
    """32,000 logits. Error bound for q_v > 0: the kernel forms log q_v = a x_v + c
    in float32 (a = (1/T + lam)/lam rounded, the product rounded, c rounded,
    the sum rounded) and exponentiates to ~2 ulp: relative error
    <= 2^-24 (3 |theta_v| + 2 |log Z| + |log q_v| + 4) (x 1.01); q below
    e^-87 may underflow to 0."""
    logits = (np.random.default_rng(5).normal(size=32_000) * 2).astype(np.float32)
    q, support_ids = ls.kernels.decode(logits, ls.BestOfK(beta=0.0, lam=lam, temperature=t, support=support))
    keep = np.ones(logits.size, bool)
    if support != "full":
        keep[:] = False
        keep[np.argsort(-logits.astype(np.float64), kind="stable")[:50]] = True
        assert set(support_ids.tolist()) == set(np.flatnonzero(keep).tolist())
    assert np.all(q[~keep] == 0.0)
    q_ref, theta, log_z = _closed_form64(logits, lam, t, keep)
    log_q = np.log(np.where(keep, q_ref, 1.0))
    rel = 1.01 * EPS32 * (3 * np.abs(np.where(keep, theta, 0)) + 2 * abs(log_z) + np.abs(log_q) + 4)
    err = np.abs(q.astype(np.float64) - q_ref)
    ok = (err <= rel * q_ref) | ((q == 0) & (log_q < -86.0))
    assert np.all(ok[keep]), (np.max(err[keep] / np.maximum(q_ref[keep], 1e-300)), rel.max())
    assert abs(float(q.astype(np.float64).sum()) - 1.0) <= 1e-5


# --------------------------------------------------------------------------
# 3. The sampler runs the solver
# --------------------------------------------------------------------------

def _support_arrays(logits, support):
    """(ids, log p over the support) from our decoders at temperature 1."""
    if support == "full":
        sampler = ls.Softmax(temperature=1.0)
    else:
        kind, _, value = support.partition(":")
        sampler = {"top-k": lambda: ls.TopK(k=int(value), temperature=1.0),
                   "top-p": lambda: ls.TopP(p=float(value), temperature=1.0),
                   "min-p": lambda: ls.MinP(p_min=float(value), temperature=1.0)}[kind]()
    ids, log_p, _p, _sel, _sorted = sampler.native().apply(logits)
    return ids, log_p


SAME = [
    ls.BestOfK(),
    ls.BestOfK.preset("paper-0.02", temperature=0.5),
    ls.BestOfK.preset("paper-0.05", temperature=0.9),
    ls.BestOfK(weights="rank", m=16, support="top-k:50"),
    ls.BestOfK(weights="gap", support="top-p:0.9", temperature=0.7),
    ls.BestOfK(support="min-p:0.05", beta=0.05, lam=0.5, k_samples=4),
    ls.BestOfK(lam=1.0, beta=2.0, step_size=0.5, steps=5),
]


@pytest.mark.parametrize("bok", SAME, ids=lambda b: f"{b.lam}-{b.beta}-{b.support}-{b.weights}-T{b.temperature}")
def test_sampler_q_equals_kernels_solve(bok):
    """The native BoK sampler and ls.kernels.solve on (s = log p / T, log p, w =
    coverage_weights(log p)) take the same J = 5 steps and end with the same q.
    The sampler may run its own (affine, float64-state) implementation of the
    same iteration, so the match is to float32 rounding of the iterates, not
    bitwise: |Δq| <= 1e-4 q + 1e-9 (J steps of a few ulp of |theta| <= ~100)."""
    logits = (np.random.default_rng(9).normal(size=2000) * 2).astype(np.float32)
    native = bok.native()
    ids_n, _lg, p_n, _sel, _sorted = native.apply(logits)
    steps, gap, status = native.last_solve
    ids, log_p = _support_arrays(logits, bok.support)
    assert set(ids_n.tolist()) == set(ids.tolist())
    s = log_p * np.float32(1.0 / bok.temperature)
    w = ls.kernels.coverage_weights(log_p, kind=bok.weights, m=bok.m)
    sol = ls.kernels.solve(s, log_p, w, lam=bok.lam, kl=1.0, beta=bok.beta, k_samples=bok.k_samples,
                           steps=bok.steps, step_size=bok.step_size, tol=bok.tol)
    assert (steps, status.name) == (sol.steps, sol.status)
    assert abs(gap - sol.gap) <= 1e-6 + 1e-2 * sol.gap
    q_native = np.zeros(logits.size)
    q_native[ids_n] = p_n
    q_solve = np.zeros(logits.size)
    q_solve[ids] = sol.q
    assert np.all(np.abs(q_native - q_solve) <= 1e-4 * q_solve + 1e-9), np.abs(q_native - q_solve).max()


# --------------------------------------------------------------------------
# 4. Coverage: K draws from BoK contain more of the top-M tokens than K draws from p
# --------------------------------------------------------------------------

COV = dict(lam=1.0, beta=2.0, temperature=1.0, k_samples=8, m=8, steps=200, step_size=0.5)
N_TRIALS = 2000


def _expected_coverage(q, top, k):
    q = np.asarray(q, np.float64)[top]
    return float(np.sum(1.0 - (1.0 - q) ** k))


def _covered_per_trial(sampler, logits, top, k, n, seed0):
    """n trials of k draws, each trial from a fresh native sampler seeded seed0 + i:
    the number of distinct top-M tokens among the k drawn tokens."""
    top_set = set(top.tolist())
    counts = np.empty(n)
    for i in range(n):
        native = sampler.native(seed=seed0 + i)
        drawn = set()
        for _ in range(k):
            ids, _lg, _p, sel, _sorted = native.apply(logits)
            assert 0 <= sel < ids.size
            drawn.add(int(ids[sel]))
        counts[i] = len(drawn & top_set)
    return counts


def test_best_of_k_covers_more_top_tokens_than_plain_sampling():
    """50 fixed logits; lam = 1, beta = 2, T = 1, K = 8, M = 8 (weights 1 on the
    top 8 of p, so U_K(q) is the expected number of distinct top-8 tokens in 8
    draws). First exactly: U_K(q_BoK) > U_K(softmax(logits / T)). Then N = 2000
    trials each: each empirical mean within 4 standard errors of its exact
    expectation, and BoK's mean above plain sampling's by more than 4 standard
    errors of the difference (sample variances, independent seeds)."""
    k, m, t = COV["k_samples"], COV["m"], COV["temperature"]
    logits = (np.random.default_rng(2024).normal(size=50) * 1.5).astype(np.float32)
    top = np.argsort(-logits.astype(np.float64), kind="stable")[:m]
    bok = ls.BestOfK(**COV)
    plain = ls.Softmax(temperature=t)

    native = bok.native()
    ids, _lg, p, _sel, _sorted = native.apply(logits)
    steps, gap, status = native.last_solve
    assert status.name == "converged" and gap < COV.get("tol", 1e-6), native.last_solve
    q_bok = np.zeros(logits.size)
    q_bok[ids] = p
    q_plain, _ = ls.kernels.softmax(logits, temperature=t)
    u_bok, u_plain = _expected_coverage(q_bok, top, k), _expected_coverage(q_plain, top, k)
    # q_plain checked independently too.
    x = logits.astype(np.float64) / t
    np.testing.assert_allclose(q_plain, np.exp(x - x.max()) / np.exp(x - x.max()).sum(), rtol=1e-5)
    assert u_bok > u_plain, (u_bok, u_plain)

    c_bok = _covered_per_trial(bok, logits, top, k, N_TRIALS, seed0=1)
    c_plain = _covered_per_trial(plain, logits, top, k, N_TRIALS, seed0=1_000_001)
    se_bok = c_bok.std(ddof=1) / math.sqrt(N_TRIALS)
    se_plain = c_plain.std(ddof=1) / math.sqrt(N_TRIALS)
    report = dict(u_bok=u_bok, u_plain=u_plain, mean_bok=c_bok.mean(), mean_plain=c_plain.mean(),
                  se_bok=se_bok, se_plain=se_plain)
    print("coverage:", report)
    assert abs(c_bok.mean() - u_bok) <= 4 * se_bok, report
    assert abs(c_plain.mean() - u_plain) <= 4 * se_plain, report
    assert c_bok.mean() - c_plain.mean() > 4 * math.hypot(se_bok, se_plain), report


# --------------------------------------------------------------------------
# 5. Generation
# --------------------------------------------------------------------------

@pytest.mark.parametrize("sampler", [ls.BestOfK(), ls.BestOfK.preset("paper-0.05", temperature=0.9),
                                     ls.BestOfK(lam=1.0, beta=2.0, m=4, support="top-k:8")],
                         ids=["default", "paper-0.05", "strong-coverage"])
def test_best_of_k_generates_reproducibly(tiny_llm, tiny_text, sampler):
    a = ls.generate(tiny_llm, tiny_text, sampler, max_tokens=20, seed=3)
    b = ls.generate(tiny_llm, tiny_text, sampler, max_tokens=20, seed=3)
    assert a.tokens == b.tokens and a.text == b.text
    assert 0 < len(a.tokens) <= 20 and a.finish_reason in ("stop", "length")
    assert all(0 <= tok < tiny_llm.n_vocab() for tok in a.tokens)
    assert a.seed == 3
    streamed = "".join(ls.generate(tiny_llm, tiny_text, sampler, max_tokens=20, seed=3))
    assert streamed == a.text
    via_llama_cpp = ls.create_completion(tiny_llm, tiny_text, sampler, seed=3, max_tokens=20)
    assert via_llama_cpp["choices"][0]["text"] == a.text
    again = ls.create_completion(tiny_llm, tiny_text, sampler, seed=3, max_tokens=20)
    assert again["choices"][0]["text"] == a.text


def test_best_of_k_seeds_change_the_draws(tiny_llm, tiny_text):
    """With a flat enough q (lam = 1, strong coverage) different seeds give
    different texts: the sampler really draws (8 seeds, 30 tokens each)."""
    sampler = ls.BestOfK(lam=1.0, beta=2.0, temperature=1.0)
    texts = {ls.generate(tiny_llm, tiny_text, sampler, max_tokens=30, seed=s).text for s in range(8)}
    assert len(texts) > 1
