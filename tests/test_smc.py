"""Power-SMC (docs/math.md §6): the weights, ESS, systematic resampling and
normaliser as pure functions; the sampler against the exact target
π(y) ∝ p(y)^α enumerated on tiny generated models (3-token outputs, α = 4);
the KV cache after resampling; the surfaces (generate, smc_particles, CLI)."""

from __future__ import annotations

import math

import llama_cpp
import numpy as np
import pytest

import llama_simplex as ls
from llama_simplex import _core, cli
from llama_simplex.eval import exact
from llama_simplex.handles import model_address

EOS = 2
ALPHA = 4.0
LENGTH = 3
DRAWS = 2000


# ---------------------------------------------------------------- pure functions

def test_exponent_schedule():
    assert _core.smc_alpha_at(4.0, 0, 0) == 1.0
    assert [_core.smc_alpha_at(4.0, 0, t) for t in (1, 2, 50)] == [4.0, 4.0, 4.0]
    # linear over the first R = 4 tokens: α_t = 1 + (α - 1) t / R
    assert [_core.smc_alpha_at(4.0, 4, t) for t in range(7)] == [1.0, 1.75, 2.5, 3.25, 4.0, 4.0, 4.0]


def test_log_z_and_incremental_weights():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=50).astype(np.float32) * 3
    lp = logits.astype(np.float64) - np.log(np.exp(logits.astype(np.float64)).sum())
    for a in (0.5, 2.0, 4.0):
        assert _core.smc_log_z(logits, a) == pytest.approx(np.log(np.exp(a * lp).sum()), abs=1e-5)
    assert _core.smc_log_z(logits, 1.0) == 0.0  # exactly: α = 1 weights are exactly 1
    # a row longer than smc.cpp's 2048-token blocks (two whole and a partial one), its maximum in the last
    big = rng.normal(size=5000).astype(np.float32) * 3
    big[4999] = big.max() + 1.0
    lpb = big.astype(np.float64) - np.log(np.exp(big.astype(np.float64)).sum())
    for a in (0.5, 4.0):
        assert _core.smc_log_z(big, a) == pytest.approx(np.log(np.exp(a * lpb).sum()), abs=1e-5)
    # live: (α_t − α_{t−1}) log p(prefix) + log Z_t; ended: the ramp term alone
    assert _core.smc_incremental_log_weight(2.5, 1.75, -3.0, 0.2, False) == pytest.approx(0.75 * -3.0 + 0.2)
    assert _core.smc_incremental_log_weight(2.5, 1.75, -3.0, 0.2, True) == pytest.approx(0.75 * -3.0)
    assert _core.smc_incremental_log_weight(4.0, 4.0, -math.inf, 0.2, True) == 0.0  # never NaN


def test_ess():
    assert _core.smc_ess([0.3] * 7) == 7.0
    assert _core.smc_ess([0.0, -math.inf, -math.inf]) == pytest.approx(1.0)
    lw = np.log([0.1, 0.2, 0.3, 0.4])
    w = np.exp(lw)
    assert _core.smc_ess(list(lw)) == pytest.approx(w.sum() ** 2 / (w ** 2).sum())


def test_systematic_resampling():
    """Against a direct implementation; each particle gets floor(N W_i) or
    ceil(N W_i) offspring (the property of systematic resampling)."""
    rng = np.random.default_rng(1)
    for n in (1, 2, 5, 16, 64):
        for _ in range(50):
            lw = rng.normal(size=n) * 2
            u = float(rng.uniform())
            got = _core.smc_systematic_resample(list(lw), u)
            w = np.exp(lw - lw.max())
            w /= w.sum()
            expect = np.searchsorted(np.cumsum(w), (u + np.arange(n)) / n, side="right")
            assert got == list(np.minimum(expect, n - 1))
            counts = np.bincount(got, minlength=n)
            assert np.all(counts >= np.floor(n * w - 1e-9)) and np.all(counts <= np.ceil(n * w + 1e-9))
    # a zero weight is never drawn
    assert 1 not in _core.smc_systematic_resample([0.0, -math.inf, 0.0], 0.999)
    with pytest.raises(ValueError, match="u"):
        _core.smc_systematic_resample([0.0], 1.0)


def test_resample_slots_never_overwrite_a_source():
    """Slot s takes a copy of src[s]: every ancestor keeps its own slot for its
    first copy, further copies go to slots whose particle has no offspring."""
    rng = np.random.default_rng(2)
    for _ in range(200):
        n = int(rng.integers(1, 20))
        ancestors = sorted(rng.integers(0, n, size=n).tolist())
        src = _core.smc_resample_slots(ancestors)
        assert sorted(src) == ancestors  # the same multiset of ancestors
        kept = set(ancestors)
        for s, a in enumerate(src):
            if s in kept:
                assert a == s  # a source keeps its slot (so it is never overwritten)
            else:
                assert a in kept and a != s


def test_log_normaliser():
    lw = [-1.0, -2.0, -0.5]
    assert _core.smc_log_normaliser(lw) == pytest.approx(np.log(np.mean(np.exp(lw))))


# ---------------------------------------------------------------- against π

@pytest.fixture(scope="module")
def hard_model(tmp_path_factory):
    """Among tiny models (vocabulary 8, seeds 0..7), the one where token-wise
    low-temperature sampling (SMC's proposal without a ramp) is furthest from
    π (3 tokens, α = 4), computed exactly."""
    from tiny_gguf import build_tiny_model
    best = None
    for seed in range(8):
        path = build_tiny_model(tmp_path_factory.mktemp("smc") / f"m{seed}.gguf", n_vocab=8, seed=seed)
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=1024, verbose=False)
        space = exact.Completions(llm, [1, 3], LENGTH, EOS)
        tv = exact.tv(space.power(ALPHA), space.low_temperature(ALPHA))
        if best is None or tv > best[0]:
            best = (tv, llm, space)
    return best[1], best[2], best[0]


def _tv(model, sampler, alpha=ALPHA, n=DRAWS):
    llm, space, _ = model
    target = space.power(alpha)
    law, _stats = exact.empirical(llm, sampler, space, n)
    return exact.tv(law, target), exact.tv_noise_quantile(target, n)


@pytest.mark.parametrize("ramp,particles", [(3, 64), (0, 256)])
def test_smc_draws_follow_pi(hard_model, ramp, particles):
    """The drawn completion's law is within the 99% noise quantile of an exact
    sampler of π at 2000 draws. With the ramp (R = 3, the whole output) at
    N = 64; without it, on this model, the O(1/N) bias at N = 64 exceeds the
    noise (π's mode has 9% under the proposal softmax(4·logits)): N = 256."""
    _llm, _space, tv_low = hard_model
    tv, noise = _tv(hard_model, ls.SMCPowerSampler(alpha=ALPHA, particles=particles, ramp=ramp))
    assert tv < noise < tv_low, (tv, noise, tv_low)


@pytest.mark.parametrize("ramp", [0, 3])
def test_smc_tv_falls_as_particles_grow(hard_model, ramp):
    """TV to π at N = 4, 16, 64: each step down by more than the noise
    quantile of π at these draws, so the fall is not sampling noise."""
    tvs = {}
    for n in (4, 16, 64):
        tvs[n], noise = _tv(hard_model, ls.SMCPowerSampler(alpha=ALPHA, particles=n, ramp=ramp))
    assert tvs[4] - tvs[64] > noise, (tvs, noise)
    assert tvs[4] > tvs[16] > tvs[64], tvs


@pytest.fixture(scope="module")
def vocab16_model(tmp_path_factory):
    """The eval's vocabulary-16 model of seed 1, where SMC's finite-N bias is
    large: the algorithm's law at N = 64 without the ramp is at TV 0.54 from π."""
    from tiny_gguf import build_tiny_model
    path = build_tiny_model(tmp_path_factory.mktemp("smc16") / "m.gguf", n_vocab=16, seed=1)
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=1024, verbose=False)
    space = exact.Completions(llm, [1, 3], LENGTH, EOS)
    return llm, space, exact.tv(space.power(ALPHA), space.low_temperature(ALPHA))


# Settings that reach every branch of the algorithm: the defaults at N = 64 with and without
# the ramp, few particles, a ramp longer than the output (the last draw then moves the
# weights), rounds, and an ESS check every second step that always resamples.
ALGORITHM_SETTINGS = [dict(particles=64), dict(particles=64, ramp=3), dict(particles=4), dict(particles=16, ramp=5),
                      dict(particles=8, rounds=3, ramp=2), dict(particles=16, block=2, ess_threshold=1.0)]


@pytest.mark.parametrize("settings", ALGORITHM_SETTINGS, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()))
@pytest.mark.parametrize("which", ["hard_model", "vocab16_model"])
def test_smc_draws_follow_the_algorithms_law(request, which, settings):
    """The implementation is the algorithm at finite N, not only in the limit:
    2000 draws are within the 99% noise quantile (plus the simulation's error)
    of the law of docs/math.md §6's algorithm at the same settings, simulated
    independently in NumPy (exact.Completions.smc_law, 20,000 runs). Where that
    law is far from π (N = 64 without the ramp on the vocabulary-16 model: TV
    0.54), the distance is the algorithm's O(1/N) bias, not the code's."""
    llm, space, _ = request.getfixturevalue(which)
    sampler = ls.SMCPowerSampler(alpha=ALPHA, **settings)
    law, err = space.smc_law(sampler)
    drawn, _stats = exact.empirical(llm, sampler, space, DRAWS)
    assert exact.tv(drawn, law) < exact.tv_noise_quantile(law, DRAWS) + err


def test_simulated_smc_law_checks(hard_model, vocab16_model):
    """The simulation itself: with one particle (never resampled) its law is
    exactly token-wise sampling from softmax(α·ℓ); at α = 1 it is p; on the
    vocabulary-16 model, where the bias is large at every N, its TV to π falls
    as N grows 4 → 16 → 64 → 256 by more than its error, with and without the
    ramp."""
    for _llm, space, _ in (hard_model, vocab16_model):
        law, err = space.smc_law(ls.SMCPowerSampler(alpha=ALPHA, particles=1))
        assert exact.tv(law, space.low_temperature(ALPHA)) <= err
        law, err = space.smc_law(ls.SMCPowerSampler(alpha=1.0, particles=8, ramp=2))
        assert exact.tv(law, space.power(1.0)) <= err
    _llm, space, _ = vocab16_model
    pi = space.power(ALPHA)
    for ramp in (0, 3):
        tvs = [(exact.tv(law, pi), err) for law, err in
               (space.smc_law(ls.SMCPowerSampler(alpha=ALPHA, particles=n, ramp=ramp)) for n in (4, 16, 64, 256))]
        for (tv_a, err_a), (tv_b, err_b) in zip(tvs, tvs[1:]):
            assert tv_a - tv_b > err_a + err_b, (ramp, tvs)


def test_normaliser_estimate_is_unbiased(hard_model):
    """Ẑ (the mean of the final weights, resamplings carrying the mean) is an
    unbiased estimate of Σ_y p(y)^α: the mean over 1000 runs is within 4
    standard errors of the exact sum."""
    llm, space, _ = hard_model
    z_pi = float(np.exp(ALPHA * space.logp()).sum())
    for ramp, n in ((0, 16), (3, 16)):
        s = ls.SMCPowerSampler(alpha=ALPHA, particles=n, ramp=ramp, ess_threshold=1.0)
        z = np.array([math.exp(ls.smc_particles(llm, space.prompt, s, max_tokens=LENGTH, seed=k,
                                                add_special=False).log_z[0]) for k in range(1000)])
        se = z.std(ddof=1) / math.sqrt(z.size)
        assert abs(z.mean() - z_pi) < 4 * se, (ramp, z.mean(), z_pi, se)


@pytest.mark.parametrize("ramp", [0, 2])
def test_alpha_one_is_plain_sampling(hard_model, ramp):
    """α = 1: every weight is exactly 1 (ESS = N, no resampling) and the draws
    follow p itself (the same TV test against p)."""
    llm, space, _ = hard_model
    s = ls.SMCPowerSampler(alpha=1.0, particles=8, ramp=ramp, ess_threshold=1.0)
    tv, noise = _tv(hard_model, s, alpha=1.0)
    assert tv < noise, (tv, noise)
    r = ls.smc_particles(llm, space.prompt, s, max_tokens=LENGTH, seed=0, add_special=False)
    assert r.weights == pytest.approx([1 / 8] * 8, rel=1e-12) and r.resamples == [0] and all(e == 8.0 for e in r.ess[0])


def test_rounds_combine(hard_model):
    """rounds = 4 of N = 16: the draw is within the noise of π as N = 64 with
    the ramp is, and smc_particles returns 4 x 16 particles whose weights sum to 1."""
    llm, space, _ = hard_model
    s = ls.SMCPowerSampler(alpha=ALPHA, particles=16, ramp=3, rounds=4)
    r = ls.smc_particles(llm, space.prompt, s, max_tokens=LENGTH, seed=1, add_special=False)
    assert len(r) == 64 and sum(r.weights) == pytest.approx(1.0) and len(r.log_z) == 4
    tv, noise = _tv(hard_model, s, n=1000)
    assert tv < noise, (tv, noise)


# ---------------------------------------------------------------- the KV cache

def _context(llm, sampler, n_prompt, max_tokens, extra_seq=1):
    n_ctx, n_seq = sampler.context_size(llm, n_prompt, max_tokens)
    return _core.RolloutContext(model_address(llm), n_ctx, n_seq + extra_seq, 0, 64, 32), n_seq


def test_prompt_cells_are_untouched_and_shared(hard_model):
    """After a run with resampling at every step, every particle's sequence
    holds the prompt's cells bit for bit as one prefill left them (positions
    and K/V rows), and the prompt's last token is one cell all share."""
    llm, _space, _ = hard_model
    prompt = [1, 3, 4, 5, 6, 3]
    s = ls.SMCPowerSampler(alpha=ALPHA, particles=8, ess_threshold=1.0)
    ctx, n = _context(llm, s, len(prompt), 6)
    spare = n  # the extra sequence
    _core.rollout_prefill(ctx, prompt[:-1])
    before = _core.rollout_seq_state(ctx, 0, len(prompt) - 1, spare)
    assert len(before) > 0
    out = _core.smc_generate(ctx, prompt, s.params(), 6, 3, True)
    assert out["rounds"][0]["resamples"] > 0
    for seq in range(n):
        assert _core.rollout_seq_state(ctx, seq, len(prompt) - 1, spare) == before, seq
    whole = {_core.rollout_seq_state(ctx, seq, len(prompt), spare) for seq in range(n)}
    assert len(whole) == 1


def test_resampled_particles_match_a_re_decode(hard_model):
    """After resampling (κ = 1: whenever ESS < N), each particle's
    log-likelihood is that of a plain decode of its tokens (so its cells are
    its own sequence's), and its weight is p(y)^α's up to the common factor."""
    llm, _space, _ = hard_model
    prompt = [1, 3]
    s = ls.SMCPowerSampler(alpha=ALPHA, particles=8, ess_threshold=1.0)
    ctx, _n = _context(llm, s, len(prompt), 6, extra_seq=0)
    resamples = 0
    for seed in range(5):
        out = _core.smc_generate(ctx, prompt, s.params(), 6, seed, True)
        rd = out["rounds"][0]
        resamples += rd["resamples"]
        for toks, ll, stopped in zip(rd["tokens"], rd["logliks"], rd["stopped"]):
            seq = list(toks) + ([EOS] if stopped else [])
            expect = sum(exact.next_logprobs(llm, prompt + seq[:i])[seq[i]] for i in range(len(seq)))
            assert ll == pytest.approx(expect, abs=1e-3), (seed, seq)
    assert resamples > 0


def test_too_small_a_context_is_refused_before_any_work(hard_model):
    llm, _space, _ = hard_model
    s = ls.SMCPowerSampler(particles=8)
    ctx = _core.RolloutContext(model_address(llm), 256, 4, 0, 64, 32)
    with pytest.raises(ValueError, match="particles: 8 particles need as many sequences"):
        _core.smc_generate(ctx, [1, 3], s.params(), 4, 0, True)
    ctx = _core.RolloutContext(model_address(llm), 256, 8, 0, 64, 32)
    with pytest.raises(ValueError, match=r"max_tokens: SMC needs 395 cells \(prompt 2 \+ particles 8 x max_tokens 49"):
        _core.smc_generate(ctx, [1, 3], s.params(), 49, 0, True)
    with pytest.raises(ValueError, match="particles, max_tokens"):
        s.context_size(llm, 2, 2**30)


def test_bad_parameters_name_themselves():
    for kwargs, name in [({"alpha": 0}, "alpha"), ({"particles": 0}, "particles"), ({"particles": 257}, "particles"),
                         ({"ramp": -1}, "ramp"), ({"ess_threshold": 1.5}, "ess_threshold"), ({"block": 0}, "block"),
                         ({"rounds": 0}, "rounds")]:
        with pytest.raises(ValueError, match=f"^{name}: must be"):
            ls.SMCPowerSampler(**kwargs)
    with pytest.raises(TypeError, match="particles"):
        ls.SMCPowerSampler(particles=2.5)
    with pytest.raises(TypeError, match="SMCPowerSampler"):
        ls.smc_particles("unused.gguf", "x", ls.PowerSampler())


# ---------------------------------------------------------------- surfaces

def test_generate_is_seeded_and_is_smc_particles_choice(tiny_llm, tiny_text):
    s = ls.SMCPowerSampler(particles=6, ess_threshold=1.0)
    a = ls.generate(tiny_llm, tiny_text, s, max_tokens=8, seed=4, progress=False)
    b = ls.generate(tiny_llm, tiny_text, s, max_tokens=8, seed=4, progress=False)
    assert a.tokens == b.tokens and a.text == b.text and len(a.tokens) <= 8
    assert a.stats["decode_calls"] <= 8 and a.stats["decoded_tokens"] <= 1 + 6 * 7
    r = ls.smc_particles(tiny_llm, tiny_text, s, max_tokens=8, seed=4)
    assert r.tokens[r.chosen] == a.tokens and len(r) == 6
    assert sum(r.weights) == pytest.approx(1.0) and 1 <= r.unique_ancestors[0] <= 6
    assert r.decoded_tokens == sum(r.rows[0]) == a.stats["decoded_tokens"] and max(r.rows[0]) <= 6
    assert r.majority_vote() is not None
    # sample_k-like voting: the heaviest answer
    votes = {}
    for t, w in zip(r.texts, r.weights):
        votes[t.strip()] = votes.get(t.strip(), 0.0) + w
    assert r.majority_vote() == max(votes, key=votes.get)


def test_sample_k_refuses_smc_and_names_smc_particles(tiny_llm):
    """Several outputs of SMC come from one run's particles: sample_k says which call gives them."""
    with pytest.raises(TypeError, match=r"^sampler: SMCPowerSampler runs through smc_particles\(\)"):
        ls.sample_k(tiny_llm, "a", 2, ls.SMCPowerSampler(particles=2), max_tokens=2, seed=0)


def test_cli_generate_smc(tiny_model_path, capfd):
    args = ["generate", "--model", str(tiny_model_path), "--sampler", "smc", "--particles", "4", "--ramp", "2",
            "--ess-threshold", "0.9", "--seed", "5", "--max-tokens", "6", "abc"]
    assert cli.main(args) == 0
    first = capfd.readouterr()
    assert "[smc]" in first.err and "particles" in first.err
    assert cli.main(args + ["--quiet"]) == 0
    second = capfd.readouterr()
    assert second.out == first.out and "[smc]" not in second.err
    assert cli.main(["generate", "--model", str(tiny_model_path), "--sampler", "smc", "--particles", "0"]) == 2
    assert "particles: must be" in capfd.readouterr().err


def test_chain_member_through_create_completion(tiny_llm, tiny_text):
    """In a llama.cpp chain (llama_cpp's create_completion): the completion is
    the one the particles drew, emitted token by token, ending at max_tokens."""
    s = ls.SMCPowerSampler(particles=4)
    out = ls.create_completion(tiny_llm, tiny_text, s, max_tokens=5, seed=2)
    text = out["choices"][0]["text"]
    prompt = ls.integration._prompt_tokens(tiny_llm, tiny_text)
    expect = s.run(tiny_llm, prompt, 5, 2, False).tokens
    assert text == _core.detokenize(model_address(tiny_llm), expect).decode("utf-8", errors="replace")


def test_block_spaces_the_ess_checks(hard_model):
    """ESS is checked every `block` tokens: 6 tokens give 6 checks at block = 1,
    3 at block = 2 and 1 at block = 4 (when no particle ends earlier)."""
    llm, _space, _ = hard_model
    for block, checks in ((1, 6), (2, 3), (4, 1)):
        s = ls.SMCPowerSampler(particles=4, block=block)
        ctx, _n = _context(llm, s, 2, 6, extra_seq=0)
        out = _core.smc_generate(ctx, [1, 3], s.params(), 6, 0, False)  # no end-of-sequence: every step runs
        assert len(out["rounds"][0]["ess"]) == checks, (block, out["rounds"][0]["ess"])
        rows = out["rounds"][0]["rows"]  # one row per distinct live sequence: at most N
        assert out["decode_calls"] == 6 and len(rows) == 6 and rows[0] == 1 and max(rows) <= 4
        assert out["decoded_tokens"] == sum(rows)


# ---------------------------------------------------------------- one row per distinct sequence

def _live_prefixes(rd, t, max_tokens):
    """The distinct token sequences, among the final particles, that were live at step t
    (their first t - 1 tokens): a particle that stopped after k tokens lived through step
    k + 1, one cut at max_tokens through step max_tokens."""
    out = set()
    for toks, stopped in zip(rd["tokens"], rd["stopped"]):
        last = len(toks) + 1 if stopped else max_tokens
        if t <= last:
            out.add(tuple(toks[:t - 1]))
    return out


def test_decoded_rows_are_the_distinct_live_sequences(hard_model):
    """Without resampling (κ = 0) a particle's history is the prefixes of its final
    tokens, so the rows decoded at step t must be exactly the distinct live prefixes:
    particles holding the same tokens share one row. Fewer rows than live particles
    (what main decoded) at some step, as copies hold the same tokens at α = 4."""
    llm, _space, _ = hard_model
    n, max_tokens = 16, 6
    s = ls.SMCPowerSampler(alpha=ALPHA, particles=n, ess_threshold=0.0)
    ctx, _n = _context(llm, s, 2, max_tokens, extra_seq=0)
    shared = False
    for seed in range(5):
        out = _core.smc_generate(ctx, [1, 3], s.params(), max_tokens, seed, True)
        rd = out["rounds"][0]
        assert rd["resamples"] == 0
        expect = [len(_live_prefixes(rd, t, max_tokens)) for t in range(1, len(rd["rows"]) + 1)]
        assert out["decoded_tokens"] == sum(expect) and out["decode_calls"] == len(expect), (seed, expect)
        assert rd["rows"] == expect, (seed, rd["rows"], expect)
        live = [sum(1 for toks, st in zip(rd["tokens"], rd["stopped"])
                    if t <= (len(toks) + 1 if st else max_tokens)) for t in range(1, len(expect) + 1)]
        shared |= any(r < k for r, k in zip(rd["rows"][1:], live[1:]))
    assert shared


def test_decoded_rows_with_resampling_are_bounded(hard_model):
    """With resampling at every step (κ = 1): at step t at least the distinct live
    prefixes of the final particles (each was a live sequence then) and at most the
    live particles are decoded; the draws stay those of a re-decode (the test above)."""
    llm, _space, _ = hard_model
    n, max_tokens = 16, 6
    s = ls.SMCPowerSampler(alpha=ALPHA, particles=n, ess_threshold=1.0)
    ctx, _n = _context(llm, s, 2, max_tokens, extra_seq=0)
    for seed in range(5):
        out = _core.smc_generate(ctx, [1, 3], s.params(), max_tokens, seed, True)
        rd = out["rounds"][0]
        assert out["decoded_tokens"] == sum(rd["rows"]) and rd["rows"][0] == 1
        for t, rows in enumerate(rd["rows"], start=1):
            assert len(_live_prefixes(rd, t, max_tokens)) <= rows <= n, (seed, t, rd["rows"])


def test_lineages_split_and_merge_without_changing_any_particle(hard_model):
    """Across particle counts, ESS checks, thresholds and rounds (lineages split by drawn
    token, join by resampling, are dropped and renamed), every particle of every round has
    the log-likelihood of a plain decode of its tokens (so the row it drew from was its own
    sequence's), the rows per step are at most the live particles, and the prompt's cells
    are left bit for bit in every particle's sequence."""
    llm, _space, _ = hard_model
    prompt = [1, 3, 4]
    cache = {}

    def redecode(seq):
        key = tuple(seq)
        if key not in cache:
            cache[key] = sum(exact.next_logprobs(llm, prompt + seq[:i])[seq[i]] for i in range(len(seq)))
        return cache[key]

    # N = 64 with κ = 1 and 8 tokens: lineages whose representative slot is overwritten by
    # resampling (so they move to another slot) occur several times per run
    for n, block, kappa, rounds, alpha in ((3, 1, 1.0, 1, ALPHA), (8, 2, 0.5, 2, ALPHA), (32, 1, 1.0, 2, ALPHA),
                                           (32, 3, 0.9, 1, ALPHA), (64, 1, 1.0, 1, ALPHA), (64, 1, 1.0, 1, 2.0)):
        s = ls.SMCPowerSampler(alpha=alpha, particles=n, block=block, ess_threshold=kappa, rounds=rounds)
        ctx, _n = _context(llm, s, len(prompt), 8)
        _core.rollout_prefill(ctx, prompt[:-1])
        before = _core.rollout_seq_state(ctx, 0, len(prompt) - 1, n)
        for seed in range(3):
            out = _core.smc_generate(ctx, prompt, s.params(), 8, seed, True)
            assert out["decoded_tokens"] == sum(sum(rd["rows"]) for rd in out["rounds"])
            for rd in out["rounds"]:
                assert rd["rows"][0] == 1 and max(rd["rows"]) <= n
                for toks, ll, stopped in zip(rd["tokens"], rd["logliks"], rd["stopped"]):
                    seq = list(toks) + ([EOS] if stopped else [])
                    # 1e-3 per token: the rollout context and llama_cpp's context compute the logits
                    # differently (<= 3.1e-4 per token on this model, measured on main's build too)
                    assert ll == pytest.approx(redecode(seq), abs=1e-3 * len(seq)), (n, block, kappa, rounds, alpha, seed, seq)
            for seq_id in range(n):
                assert _core.rollout_seq_state(ctx, seq_id, len(prompt) - 1, n) == before, (n, seed, seq_id)


def test_one_sequence_decodes_one_row_per_step(hard_model):
    """At a huge α the proposal is a point mass: all N particles draw the same tokens
    and share one row, so a run decodes one row per step (main: N rows per step)."""
    llm, _space, _ = hard_model
    for n in (8, 64):
        s = ls.SMCPowerSampler(alpha=1e4, particles=n)
        ctx, _n = _context(llm, s, 2, 6, extra_seq=0)
        out = _core.smc_generate(ctx, [1, 3], s.params(), 6, 0, False)
        rd = out["rounds"][0]
        assert len({tuple(t) for t in rd["tokens"]}) == 1 and len(rd["tokens"][0]) == 6
        assert out["decoded_tokens"] == out["decode_calls"] == 6 and rd["rows"] == [1] * 6
