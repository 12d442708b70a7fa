"""Every sequence-level sampler at each of its presets against the exact
target π ∝ p^α, at the settings users run (docs/math.md §5): α = 4, 3-token
outputs, horizons longer than the tokens left, tiny enumerable models on
which π is far from token-wise low-temperature sampling.

Each check compares the TV of N seeded draws with the 99th percentile of the
TV an exact sampler gets at the same N (simulated, fixed seed). Where a
sampler differs from π by design, the test computes the exact law of its
algorithm (eval/exactness.algorithm_law), checks the draws against that, and
states the bias:
- PowerSampler cpu-small (K = 4): tokens outside the 4 most likely get no
  weight; on tiny16-s1 end-of-sequence is 5th in p but carries 40 % of π's
  first token, so the law is at TV 0.41 from π;
- BlockPowerSampler at outputs shorter than a block (both presets: B = 192
  and 8 > 3): the output is its tail, the best of L_tail base samples by
  p^α (a self-normalised importance sampler), at TV 0.004-0.16 (L = 16,
  paper) and 0.05-0.39 (L = 8, cpu-small) from π on these models;
- MCMCPowerSampler, the paper's 16 stages x 10 steps: its proposal is
  low-temperature sampling, which rarely proposes π's likeliest outputs on
  these models, so after 10 steps per stage the chain is still at TV
  0.44-0.85 from π; the chain's stationary law is π (checked exactly).
- SMCPowerSampler N = 64 at its defaults (no ramp): its proposal is
  low-temperature sampling too; on tiny16-s0 π's likeliest output has 0.6 %
  under it, so 64 particles rarely hold it and the O(1/N) bias is large
  (TV 0.54-0.57 on the vocabulary-16 models, 0.03 on tiny8-s2, measured;
  not tested). N = 256 with the exponent ramped over the 3 tokens is π
  within the noise (tested below as its algorithm's law, π).
"""

from __future__ import annotations

from typing import Dict

import llama_cpp
import numpy as np
import pytest

import llama_simplex as ls
from llama_simplex.eval import exact
from llama_simplex.eval.exactness import QUANTILE, algorithm_law, samplers_at_presets

ALPHA, LENGTH, N, PROMPT, EOS = 4.0, 3, 1000, [1, 3], 2
# (n_vocab, seed) of tiny models picked, among seeds 0..7 of vocabularies 8
# and 16, for a large exact TV between π and low-temperature sampling.
MODELS = [(8, 2), (16, 1), (16, 0)]
SAMPLERS = dict(samplers_at_presets(ALPHA))


@pytest.fixture(scope="module", params=MODELS, ids=[f"tiny{v}-s{s}" for v, s in MODELS])
def model(request, tmp_path_factory):
    from tiny_gguf import build_tiny_model
    n_vocab, seed = request.param
    path = build_tiny_model(tmp_path_factory.mktemp("exact") / f"tiny{n_vocab}-s{seed}.gguf", n_vocab=n_vocab,
                            seed=seed)
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=512, verbose=False)
    space = exact.Completions(llm, PROMPT, LENGTH, EOS)
    draws: Dict[str, np.ndarray] = {}

    def law_of(label: str) -> np.ndarray:
        if label not in draws:
            draws[label] = exact.empirical(llm, SAMPLERS[label], space, N)[0]
        return draws[label]
    yield f"tiny{n_vocab}-s{seed}", space, law_of
    llm.close()


def test_models_are_far_from_low_temperature(model):
    _name, space, _law_of = model
    pi = space.power(ALPHA)
    assert exact.tv(space.low_temperature(ALPHA), pi) > 0.5
    # ... and far apart in units of the sampling noise at N draws.
    assert exact.tv(space.low_temperature(ALPHA), pi) > 5 * exact.tv_noise_quantile(pi, N, QUANTILE)


def test_power_sampler_paper_preset_is_pi(model):
    """K = M = 8, H = 64 with 2 tokens left: within the noise of an exact
    sampler. Rollouts that ran the full H past max_tokens gave TV 0.32
    (tiny16-s1) and 0.11 (tiny16-s0) here."""
    _name, space, law_of = model
    pi = space.power(ALPHA)
    assert exact.tv(space.power_top_k(ALPHA, 8), pi) < 1e-3  # the 8 candidates hold π's tokens
    tv, noise = exact.tv(law_of("PowerSampler paper"), pi), exact.tv_noise_quantile(pi, N, QUANTILE)
    assert tv <= noise, (tv, noise)


# SMC N = 64 without a ramp is reported by the eval, not held to π (see the docstring).
@pytest.mark.parametrize("label", [label for label in SAMPLERS if label not in ("PowerSampler paper",
                                                                                "SMCPowerSampler N = 64")])
def test_sampler_follows_its_algorithm_exactly(model, label):
    """Every other preset: the draws' TV to the exact law of its algorithm is
    within that law's noise quantile at N (plus the Monte Carlo error of the
    block law's computation). The bias by design, TV(law, π), is what the
    module docstring states."""
    _name, space, law_of = model
    ref, err, _what = algorithm_law(space, SAMPLERS[label])
    tv, noise = exact.tv(law_of(label), ref), exact.tv_noise_quantile(ref, N, QUANTILE) + err
    assert tv <= noise, (tv, noise)


def test_biases_by_design_are_as_stated(model):
    """The stated biases, computed exactly on each model (no sampling)."""
    name, space, _law_of = model
    pi = space.power(ALPHA)
    noise = exact.tv_noise_quantile(pi, N, QUANTILE)
    k4 = exact.tv(space.power_top_k(ALPHA, 4), pi)
    # K = 4 loses π's end-of-sequence on tiny16-s1; elsewhere less than N draws can see.
    assert (k4 > 0.4) == ("tiny16-s1" in name), k4
    if k4 <= 0.4:
        assert k4 < noise / 2, (k4, noise)
    # MCMC at the paper's setting: far from π, but its chain's stationary law is π.
    mcmc = algorithm_law(space, SAMPLERS["MCMCPowerSampler paper (16 stages, 10 steps)"])[0]
    assert exact.tv(mcmc, pi) > 0.4 > noise


def test_mcmc_chain_converges_to_pi(tmp_path):
    """With one stage and enough Metropolis-Hastings steps the exact law of
    the chain is π: the acceptance rule (length ratio included) is right."""
    from tiny_gguf import build_tiny_model
    llm = llama_cpp.Llama(model_path=str(build_tiny_model(tmp_path / "m.gguf", n_vocab=8, seed=2)), n_ctx=256,
                          verbose=False)
    try:
        space = exact.Completions(llm, PROMPT, LENGTH, EOS)
        assert exact.tv(space.mcmc_law(ls.MCMCPowerSampler(alpha=ALPHA, stages=1, steps=2000)), space.power(ALPHA)) < 1e-3
    finally:
        llm.close()


def test_noise_quantile_is_what_exact_sampling_gives():
    """The noise quantile is the TV an exact sampler stays under: draws from π
    itself (numpy, other seeds) exceed it in about 1 % of repetitions."""
    law = np.array([0.5, 0.2, 0.1, 0.1, 0.05, 0.05])
    q = exact.tv_noise_quantile(law, 200, 0.99, reps=4000, seed=0)
    rng = np.random.default_rng(123)
    tvs = 0.5 * np.abs(rng.multinomial(200, law, size=4000) / 200 - law).sum(axis=1)
    assert 0.003 <= np.mean(tvs > q) <= 0.02
