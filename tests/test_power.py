"""Power sampling (docs/math.md §4): the weights and jackknife as pure functions,
and the sampler against the exact target π(x) ∝ p(x)^α enumerated on tiny
generated models."""

from __future__ import annotations


import llama_cpp
import numpy as np
import pytest

import llama_simplex as ls
from llama_simplex.eval import exact

EOS = 2


# ---------------------------------------------------------------- weights

def test_alpha_one_is_the_model_distribution():
    rng = np.random.default_rng(0)
    log_p = np.log(np.array([0.5, 0.3, 0.2], np.float32))
    loglik = rng.normal(size=(3, 5)) * 3
    for jk in (False, True):
        w = ls.power_weights(log_p, loglik, alpha=1.0, jackknife=jk)
        np.testing.assert_allclose(w, [0.5, 0.3, 0.2], rtol=1e-6)


def test_plug_in_formula():
    log_p = np.log(np.array([0.6, 0.4], np.float32))
    loglik = np.log(np.array([[0.5, 0.25], [0.9, 0.1]]))
    alpha = 3.0
    zeta = np.mean(np.exp((alpha - 1) * loglik), axis=1)
    expect = np.exp(alpha * log_p.astype(np.float64)) * zeta
    np.testing.assert_allclose(ls.power_weights(log_p, loglik, alpha=alpha, jackknife=False),
                               expect / expect.sum(), rtol=1e-6)


def test_jackknife_formula_and_clipping():
    log_p = np.log(np.array([0.6, 0.3, 0.1], np.float32)).astype(np.float64)
    loglik = np.log(np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.4], [0.05, 0.9, 0.01]]))
    alpha, m = 4.0, 3

    def plug(rows):
        z = np.exp(alpha * log_p) * np.array([np.mean(np.exp((alpha - 1) * r)) for r in rows])
        return z / z.sum()
    p_hat = plug(loglik)
    loo = sum(plug(np.delete(loglik, s, axis=1)) for s in range(m))
    jk = np.clip(m * p_hat - (m - 1) / m * loo, 0, None)
    np.testing.assert_allclose(ls.power_weights(log_p, loglik, alpha=alpha, jackknife=True), jk / jk.sum(), rtol=1e-6)


def test_weights_reject_bad_input():
    with pytest.raises(ValueError, match="loglik"):
        ls.power_weights([0.0, -1.0], np.zeros((3, 2)), alpha=2.0)
    with pytest.raises(ValueError, match="alpha"):
        ls.power_weights([0.0], np.zeros((1, 2)), alpha=0.0)
    with pytest.raises(ValueError, match="NaN"):
        ls.power_weights([0.0, np.nan], np.zeros((2, 2)), alpha=2.0)


def test_weights_with_infinite_log_likelihoods():
    """-inf is a zero-probability future: p(y)^(α-1) = 0 for α > 1 (1 for α = 1);
    +inf is no likelihood (an error naming loglik); never NaN weights."""
    log_p = np.log(np.array([0.5, 0.3, 0.2], np.float32))
    ll = np.log(np.array([[0.5, 0.25, 0.1], [0.9, 0.1, 0.3], [0.2, 0.2, 0.2]]))
    ll_inf = ll.copy()
    ll_inf[0, 1] = -np.inf
    ll_inf[2, :] = -np.inf  # every future of candidate 2 impossible: ζ = 0
    for alpha in (2.0, 4.0):
        # The limit: the same as a future of probability 0.
        zeta = np.mean(np.where(np.isinf(ll_inf), 0.0, np.exp((alpha - 1) * ll_inf)), axis=1)
        expect = np.exp(alpha * log_p.astype(np.float64)) * zeta
        w = ls.power_weights(log_p, ll_inf, alpha=alpha, jackknife=False)
        np.testing.assert_allclose(w, expect / expect.sum(), rtol=1e-6)
        wj = ls.power_weights(log_p, ll_inf, alpha=alpha, jackknife=True)
        assert np.all(np.isfinite(wj)) and wj.sum() == pytest.approx(1.0) and wj[2] == 0.0
        # A tiny but finite likelihood tends to the same weights.
        np.testing.assert_allclose(ls.power_weights(log_p, np.maximum(ll_inf, -1e4), alpha=alpha, jackknife=True),
                                   wj, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ls.power_weights(log_p, ll_inf, alpha=1.0, jackknife=True), [0.5, 0.3, 0.2], rtol=1e-6)
    # A candidate of probability 0 has weight 0 whatever its futures.
    w = ls.power_weights(np.array([0.0, -np.inf], np.float32), np.zeros((2, 2)), alpha=4.0)
    np.testing.assert_array_equal(w, [1.0, 0.0])
    bad = ll.copy()
    bad[1, 0] = np.inf
    with pytest.raises(ValueError, match="loglik: \\+inf"):
        ls.power_weights(log_p, bad, alpha=4.0)
    with pytest.raises(ValueError, match="log_p: \\+inf"):
        ls.power_weights(np.array([np.inf, 0.0], np.float32), np.zeros((2, 2)), alpha=4.0)
    with pytest.raises(ValueError, match="loglik: -inf .* alpha < 1"):
        ls.power_weights(log_p, ll_inf, alpha=0.5)
    with pytest.raises(ValueError, match="no candidate has positive weight"):
        ls.power_weights(log_p, np.full((3, 2), -np.inf), alpha=4.0)


def test_jackknife_has_smaller_bias_than_plug_in():
    """Three candidates whose futures have p(y) from known discrete laws; the
    exact target weights are p^α E[p(y)^(α-1)], normalised. Over R repetitions
    at M = 4 the mean jackknife estimate is closer to the target than the mean
    plug-in estimate, by more than 4 standard errors of the difference."""
    rng = np.random.default_rng(12345)
    log_p = np.log(np.array([0.5, 0.3, 0.2], np.float32))
    futures = [np.array([0.9, 0.05]), np.array([0.6, 0.3]), np.array([0.3, 0.25])]  # p(y) values, equiprobable
    alpha, m, reps = 4.0, 4, 20000
    zeta = np.array([np.mean(f ** (alpha - 1)) for f in futures])
    target = np.exp(alpha * log_p.astype(np.float64)) * zeta
    target /= target.sum()
    plug, jack = np.empty((reps, 3)), np.empty((reps, 3))
    for i in range(reps):
        ll = np.log(np.stack([rng.choice(f, size=m) for f in futures]))
        plug[i] = ls.power_weights(log_p, ll, alpha=alpha, jackknife=False)
        jack[i] = ls.power_weights(log_p, ll, alpha=alpha, jackknife=True)
    err_plug = np.abs(plug.mean(0) - target).sum()
    err_jack = np.abs(jack.mean(0) - target).sum()
    # Standard error of the difference of the two L1 errors, per coordinate.
    se = np.sqrt(((plug - jack).var(0) / reps).sum())
    assert err_jack < err_plug - 4 * se, (err_jack, err_plug, se)


# ---------------------------------------------------------------- exact target on tiny models

def _tv_to_pi(planning_model, sampler, alpha, n_samples):
    """TV between the sampler's empirical two-token law (seeds 0..N-1) and
    π ∝ p^α, and the 99th percentile of an exact sampler's TV at N draws."""
    llm, space, _tv_low = planning_model
    pi = space.power(alpha)
    law, _stats = exact.empirical(llm, sampler, space, n_samples)
    return exact.tv(law, pi), exact.tv_noise_quantile(pi, n_samples)


@pytest.fixture(scope="module")
def planning_model(tmp_path_factory):
    """Among tiny models (vocabulary 8, seeds 0..7), the one where token-wise
    low-temperature sampling is furthest from π (two tokens, α = 2), computed
    exactly: the 'plan versus guess' situation of the paper."""
    from tiny_gguf import build_tiny_model
    best = None
    for seed in range(8):
        path = build_tiny_model(tmp_path_factory.mktemp("pm") / f"m{seed}.gguf", n_vocab=8, seed=seed)
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, verbose=False)
        space = exact.Completions(llm, [1, 3], 2, EOS)
        tv = exact.tv(space.power(2.0), space.low_temperature(2.0))
        if best is None or tv > best[0]:
            best = (tv, llm, space)
    return best[1], best[2], best[0]


def test_power_sampler_matches_the_exact_target(planning_model):
    _llm, space, tv_low = planning_model
    alpha, n_samples = 2.0, 2500
    sampler = ls.PowerSampler(alpha=alpha, candidates=8, rollouts=64, horizon=1, jackknife=True)
    tv, noise = _tv_to_pi(planning_model, sampler, alpha, n_samples)
    # The noise's 99th percentile, plus 0.02 for the estimator's residual
    # bias at M = 64 rollouts.
    bound = noise + 0.02
    assert tv < bound, (tv, bound)
    # Low-temperature sampling is measurably further from π than that.
    assert tv_low > bound, (tv_low, bound)


def test_alpha_one_is_ordinary_sampling(planning_model):
    llm, space, _ = planning_model
    prompt, p1 = space.prompt, np.exp(space.next_lp[()])
    n_samples = 1500
    sampler = ls.PowerSampler(alpha=1.0, candidates=8, rollouts=2, horizon=1)
    first = np.zeros(p1.size)
    for seed in range(n_samples):
        toks = ls.generate(llm, prompt, sampler, max_tokens=1, seed=seed, add_special=False).tokens
        first[toks[0] if toks else EOS] += 1
    q = p1
    assert np.all(np.abs(first / n_samples - q) <= 5 * np.sqrt(q * (1 - q) / n_samples) + 1e-12)


def test_power_generation_is_seeded_and_validated(tiny_llm, tiny_text):
    s = ls.PowerSampler(alpha=4.0, candidates=4, rollouts=4, horizon=4)
    a = ls.generate(tiny_llm, tiny_text, s, max_tokens=6, seed=3)
    b = ls.generate(tiny_llm, tiny_text, s, max_tokens=6, seed=3)
    assert a.tokens == b.tokens and a.text == b.text
    assert a.stats["rollouts"] > 0 and a.stats["rollout_tokens"] > 0
    with pytest.raises(ValueError, match="alpha"):
        ls.PowerSampler(alpha=0)
    with pytest.raises(ValueError, match="rollouts"):
        ls.PowerSampler(rollouts=0)
    with pytest.raises(TypeError, match="jackknife"):
        ls.PowerSampler(jackknife=1)
    with pytest.raises(NotImplementedError):
        s.native()


def test_rollouts_stop_at_max_tokens(tiny_llm):
    """π's sequences end at max_tokens, so the futures do too: with one token
    left after the first, each of the K·M rollouts decodes exactly one token
    (the paper preset's H = 64 ran up to 64 before); the last token runs none."""
    s = ls.PowerSampler.preset("paper")
    one = ls.generate(tiny_llm, [1, 3], s, max_tokens=2, seed=0, add_special=False, progress=False)
    assert 0 < one.stats["rollouts"] <= 64
    assert one.stats["rollout_tokens"] == one.stats["rollouts"]
    last = ls.generate(tiny_llm, [1, 3], s, max_tokens=1, seed=0, add_special=False, progress=False)
    assert last.stats["rollouts"] == 0
    # The benchmark mode keeps the full horizon (not π near the end).
    bench = ls.generate(tiny_llm, [1, 3], ls.PowerSampler.preset("paper", low_temperature_last=False), max_tokens=2,
                        seed=0, add_special=False, progress=False)
    assert bench.stats["rollout_tokens"] > 2 * bench.stats["rollouts"]


def test_chain_sampler_with_a_length_limit(tiny_llm):
    """native(max_tokens=T): the chain sampler's futures stop at T too; at the
    last token its weights are p^α over the K candidates, with no rollouts."""
    prompt = tiny_llm.tokenize(b"abc abc")
    tiny_llm.reset()
    tiny_llm.eval(prompt)
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(tiny_llm.ctx, -1), shape=(tiny_llm.n_vocab(),)).copy()
    alpha = 4.0

    def weights(**kw):
        native = ls.PowerSampler(alpha=alpha, candidates=6, rollouts=4, horizon=8).native(llm=tiny_llm, **kw)
        for t in prompt:
            native.accept(t)
        ids, _lg, p, _sel, _sorted = native.apply(logits)
        return np.asarray(ids), np.asarray(p, np.float64)

    ids, p = weights(max_tokens=1)
    q = np.exp(alpha * (logits[ids].astype(np.float64) - logits.max()))
    np.testing.assert_allclose(p, q / q.sum(), rtol=1e-5)
    ids_free, p_free = weights()  # no limit: the rollouts run 8 tokens and change the weights
    assert set(ids_free) == set(ids) and np.abs(p_free - p).max() > 1e-3
    with pytest.raises(ValueError, match="max_tokens"):
        ls.PowerSampler().native(llm=tiny_llm, max_tokens=-1)


@pytest.mark.parametrize("naive", [False, True])
def test_rollouts_leave_the_prefix_untouched(tiny_llm, naive):
    """After a step's rollouts are run and removed, decoding the next token on
    the prefix gives bit-identical logits to a fresh cache."""
    from llama_simplex.generation import model_address
    params = ls.PowerSampler(alpha=4.0, candidates=6, rollouts=5, horizon=6).params()
    ctx = ls._core.RolloutContext(model_address(tiny_llm), 1024, 64)
    prompt = tiny_llm.tokenize(b"abc abc")
    for nxt in (3, 7):
        assert ls._core.rollout_prefix_probe(ctx, prompt, params, 1, nxt, naive) == 0.0


def test_naive_reprefill_gives_the_same_samples(tiny_llm, tiny_text):
    """The re-prefill baseline draws the same tokens from the same seed: only
    how the prefix reaches the rollouts differs (up to batch rounding)."""
    from llama_simplex.power import run_power
    s = ls.PowerSampler(alpha=3.0, candidates=4, rollouts=3, horizon=3)
    prompt = tiny_llm.tokenize(tiny_text.encode())
    fork = run_power(tiny_llm, prompt, s, 5, 11, False, naive=False)
    naive = run_power(tiny_llm, prompt, s, 5, 11, False, naive=True)
    assert fork.stats["rollouts"] == naive.stats["rollouts"]
    assert naive.stats["decode_calls"] > fork.stats["decode_calls"]
    assert fork.tokens == naive.tokens


def test_cli_power(tiny_model_path, capfd):
    from llama_simplex import cli
    args = ["generate", "--model", str(tiny_model_path), "--sampler", "power", "--alpha", "3", "--candidates", "4",
            "--rollouts", "3", "--horizon", "4", "--no-jackknife", "--seed", "5", "--max-tokens", "6", "abc"]
    assert cli.main(args) == 0
    first = capfd.readouterr()
    assert "[power]" in first.err and "rollouts/s" in first.err
    assert cli.main(args + ["--quiet"]) == 0
    second = capfd.readouterr()
    assert second.out == first.out and "[power]" not in second.err
    assert cli.main(["generate", "--model", str(tiny_model_path), "--sampler", "power", "--rollouts", "0"]) == 2
    assert "rollouts: must be" in capfd.readouterr().err


def test_sample_k_rejects_power(tiny_llm, tiny_text):
    with pytest.raises(TypeError, match="PowerSampler"):
        ls.sample_k(tiny_llm, tiny_text, 2, ls.PowerSampler())


def test_mcmc_alpha_one_is_ordinary_sampling(planning_model):
    """With α = 1 the proposal is p itself and the target is p: the first
    token follows p (bound: 5 binomial standard deviations)."""
    llm, space, _ = planning_model
    prompt, p1 = space.prompt, space.next_lp[()]
    n_samples = 1200
    first = np.zeros(p1.size)
    for seed in range(n_samples):
        toks = ls.generate(llm, prompt, ls.MCMCPowerSampler(alpha=1.0, stages=2, steps=3), max_tokens=2, seed=seed,
                           add_special=False, progress=False).tokens
        first[toks[0] if toks else EOS] += 1
    q = np.exp(p1)
    assert np.all(np.abs(first / n_samples - q) <= 5 * np.sqrt(q * (1 - q) / n_samples) + 1e-12)


def test_mcmc_targets_the_power_distribution(planning_model):
    """Two tokens, two stages, 20 steps each: the chain's final state is close
    to π ∝ p^α (same bound as the power sampler, plus 0.03 for finite mixing)."""
    llm, space, tv_low = planning_model
    prompt = space.prompt
    alpha, n_samples = 2.0, 1500
    sampler = ls.MCMCPowerSampler(alpha=alpha, stages=2, steps=20)
    tv, noise = _tv_to_pi(planning_model, sampler, alpha, n_samples)
    bound = noise + 0.03
    assert tv < bound < tv_low, (tv, bound, tv_low)
    a = ls.generate(llm, prompt, sampler, max_tokens=2, seed=7, add_special=False, progress=False)
    b = ls.generate(llm, prompt, sampler, max_tokens=2, seed=7, add_special=False, progress=False)
    assert a.tokens == b.tokens


def test_block_sampler_with_one_whole_block_is_exact(planning_model):
    """B = max_tokens = 2: the output is one block with no future (ζ = 1), drawn
    among the distinct sampled blocks with weight p^α. With 128 samples every
    likely block is found, so the draws follow π ∝ p^α (bound as above, plus
    0.03 for blocks never sampled)."""
    _llm, _space, tv_low = planning_model
    alpha, n_samples = 2.0, 1500
    sampler = ls.BlockPowerSampler(alpha=alpha, block=2, samples=128, candidates=128, rollouts=2, horizon=2,
                                   tail_samples=128)
    tv, noise = _tv_to_pi(planning_model, sampler, alpha, n_samples)
    bound = noise + 0.03
    assert tv < bound < tv_low, (tv, bound, tv_low)


def test_block_sampler_runs_rollouts_and_is_seeded(tiny_llm, tiny_text):
    s = ls.BlockPowerSampler(alpha=4.0, block=3, samples=6, candidates=3, rollouts=3, horizon=4, tail_samples=4)
    a = ls.generate(tiny_llm, tiny_text, s, max_tokens=8, seed=1, progress=False)
    b = ls.generate(tiny_llm, tiny_text, s, max_tokens=8, seed=1, progress=False)
    assert a.tokens == b.tokens and len(a.tokens) <= 8
    if len(a.tokens) > 3:
        assert a.stats["rollouts"] > 0
    with pytest.raises(ValueError, match="samples \\+ rollouts"):
        ls.BlockPowerSampler(samples=120, rollouts=200)
    with pytest.raises(ValueError, match="block"):
        ls.BlockPowerSampler(block=0)


def _chain_logits_run(llm, sampler_ptr, prompt, steps):
    """Drives a llama.cpp chain holding our power sampler the way llama-server
    does: prompt tokens through accept(), then sample/accept per token."""
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    llama_cpp.llama_sampler_chain_add(chain, sampler_ptr)
    for t in prompt:
        llama_cpp.llama_sampler_accept(chain, t)
    llm.reset()
    llm.eval(prompt)
    out = []
    for _ in range(steps):
        tok = llama_cpp.llama_sampler_sample(chain, llm.ctx, -1)  # applies the chain and accepts the token
        out.append(tok)
        llm.eval([tok])
    llama_cpp.llama_sampler_free(chain)
    return out


def test_power_sampler_inside_a_llama_cpp_chain(tiny_llm):
    prompt = tiny_llm.tokenize(b"abc abc")
    make = lambda: ls.to_llama_cpp(ls.PowerSampler(alpha=3.0, candidates=4, rollouts=3, horizon=4), seed=5,
                                   llm=tiny_llm, n_ctx=512)
    a = _chain_logits_run(tiny_llm, make(), prompt, 5)
    b = _chain_logits_run(tiny_llm, make(), prompt, 5)
    assert a == b and all(0 <= t < tiny_llm.n_vocab() for t in a)


def test_chain_power_sampler_writes_the_power_weights(tiny_llm):
    """With α = 1 the weights are p itself over the K candidates."""
    prompt = tiny_llm.tokenize(b"abc abc")
    tiny_llm.reset()
    tiny_llm.eval(prompt)
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(tiny_llm.ctx, -1), shape=(tiny_llm.n_vocab(),)).copy()
    native = ls.PowerSampler(alpha=1.0, candidates=16, rollouts=2, horizon=3).native(llm=tiny_llm, n_ctx=512)
    for t in prompt:
        native.accept(t)
    ids, _lg, p, _sel, _sorted = native.apply(logits)
    q = np.exp(logits.astype(np.float64) - logits.max())
    q /= q.sum()
    np.testing.assert_allclose(p, q[ids], rtol=1e-5, atol=1e-7)
    fresh = ls.PowerSampler().native(llm=tiny_llm)
    with pytest.raises(ValueError, match="no history"):
        fresh.apply(logits)


def test_power_sampler_through_llama_cpp_create_completion(tiny_llm, tiny_text):
    s = ls.PowerSampler(alpha=3.0, candidates=4, rollouts=3, horizon=3)
    a = ls.create_completion(tiny_llm, tiny_text, s, seed=2, max_tokens=6)["choices"][0]["text"]
    b = ls.create_completion(tiny_llm, tiny_text, s, seed=2, max_tokens=6)["choices"][0]["text"]
    c = "".join(ch["choices"][0]["text"] for ch in
                ls.create_completion(tiny_llm, tiny_text, s, seed=2, max_tokens=6, stream=True))
    assert a == b == c and len(a) > 0


def test_create_completion_gives_the_power_sampler_its_length_limit(tiny_llm, tiny_text, monkeypatch):
    """create_completion passes its max_tokens to the chain sampler, so the
    rollouts stop where the completion must (0, no limit, only when llama_cpp
    runs to the end of the context)."""
    seen = []
    native = ls.PowerSampler.native

    def spy(self, seed=None, **kw):
        seen.append(kw.get("max_tokens"))
        return native(self, seed, **kw)

    monkeypatch.setattr(ls.PowerSampler, "native", spy)
    s = ls.PowerSampler(alpha=3.0, candidates=4, rollouts=3, horizon=3)
    ls.create_completion(tiny_llm, tiny_text, s, seed=2, max_tokens=5)
    list(ls.create_completion(tiny_llm, tiny_text, s, seed=2, max_tokens=4, stream=True))
    assert seen == [5, 4]


def test_power_sampler_at_its_defaults_through_create_completion(tiny_llm, tiny_text):
    """The default PowerSampler (paper preset, H = 64, far past the 3 tokens
    asked for) in llama-cpp-python's loop: answered and seeded (that the limit
    reaches its chain sampler is test_create_completion_gives_the_power_sampler_its_length_limit)."""
    s = ls.PowerSampler()
    a = ls.create_completion(tiny_llm, tiny_text, s, seed=9, max_tokens=3)["choices"][0]["text"]
    b = ls.create_completion(tiny_llm, tiny_text, s, seed=9, max_tokens=3)["choices"][0]["text"]
    assert a == b
