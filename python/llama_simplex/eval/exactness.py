"""`llama-simplex eval exactness`: how close every sequence-level sampler, at
each of its presets, comes to the exact target π ∝ p^α, on models small
enough to enumerate (tiny generated GGUFs: `python models/tiny_gguf.py
tiny.gguf --n-vocab 16 --seed 1`).

The settings are the ones users run: α = 4, outputs of 3 tokens, the
presets' horizons (longer than what is left). For each sampler: the total
variation (TV) between the empirical law of N draws and π, beside the 99th
percentile of the TV an exact sampler of π gets at the same N (simulated
with a fixed seed): a TV above it is bias, not noise. Token-wise
low-temperature sampling's exact TV to π is given for scale. Each point is
cached in DIR/cache.json, so an interrupted run resumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import llama_cpp
import numpy as np

from ..power import BlockPowerSampler, MCMCPowerSampler, PowerSampler
from ..report import save_figure, write_results
from ..samplers import Sampler
from ..smc import SMCPowerSampler
from . import exact
from .cache import PointCache

QUANTILE = 0.99


def samplers_at_presets(alpha: float) -> List[Tuple[str, Sampler]]:
    """Every sequence-level sampler at each of its presets, at power α.
    MCMCPowerSampler has one setting, the paper's (16 stages, 10 steps)."""
    out: List[Tuple[str, Sampler]] = []
    for cls in (PowerSampler, BlockPowerSampler):
        for name in cls.PRESETS:
            out.append((f"{cls.__name__} {name}", cls.preset(name, alpha=alpha)))
    out.append(("MCMCPowerSampler paper (16 stages, 10 steps)", MCMCPowerSampler(alpha=alpha)))
    # SMC has no presets: N = 64 at its defaults (no ramp) and with the exponent ramped over 3
    # tokens (the whole output at the eval's default length), and N = 256 with that ramp.
    out.append(("SMCPowerSampler N = 64", SMCPowerSampler(alpha=alpha, particles=64)))
    out.append(("SMCPowerSampler N = 64, ramp = 3", SMCPowerSampler(alpha=alpha, particles=64, ramp=3)))
    out.append(("SMCPowerSampler N = 256, ramp = 3", SMCPowerSampler(alpha=alpha, particles=256, ramp=3)))
    return out


def algorithm_law(space: exact.Completions, sampler: Sampler) -> Tuple[np.ndarray, float, str]:
    """The exact law of what the sampler's algorithm draws with unlimited
    draws of its own randomness, where that differs from π by design, with
    the error of its computation and what it is:
    - PowerSampler: exact futures (M → ∞) over its K candidates (π when K
      covers π's tokens; the rollouts' finite-M bias is what remains);
    - BlockPowerSampler with outputs shorter than a block: the whole output is
      its tail, one of L_tail base samples chosen ∝ p^α (Monte Carlo, error
      bound given);
    - MCMCPowerSampler: the chain's law after its stages and steps (exact);
    - SMCPowerSampler: the algorithm's law at its N particles, ramp, ESS
      threshold, block and rounds, simulated in NumPy (Monte Carlo, error
      bound given); it tends to π as N grows (bias O(1/N))."""
    law = _ALGORITHM_LAWS.get(type(sampler))
    if law is None:
        raise TypeError(f"sampler: no exact law for {type(sampler).__name__}")
    return law(space, sampler)


def _power_law(space: exact.Completions, sampler: PowerSampler) -> Tuple[np.ndarray, float, str]:
    return (space.power_top_k(sampler.alpha, sampler.candidates), 0.0,
            f"exact futures over the top {sampler.candidates}")


def _block_law(space: exact.Completions, sampler: BlockPowerSampler) -> Tuple[np.ndarray, float, str]:
    if space.length > sampler.block:
        raise ValueError(f"block: the exact law is computed for outputs within one block ({sampler.block} tokens), "
                         f"got {space.length}")
    law, err = space.best_of_samples(sampler.alpha, sampler.tail_samples)
    return law, err, f"best of {sampler.tail_samples} base samples by p^α"


def _mcmc_law(space: exact.Completions, sampler: MCMCPowerSampler) -> Tuple[np.ndarray, float, str]:
    return (space.mcmc_law(sampler), 0.0,
            f"the chain after {sampler.stages} stages x {sampler.steps} steps")


def _smc_law(space: exact.Completions, sampler: SMCPowerSampler) -> Tuple[np.ndarray, float, str]:
    law, err = space.smc_law(sampler)
    return law, err, f"the algorithm at N = {sampler.particles}, simulated"


# Each algorithm's law is its own maths: one entry per sequence-level sampler.
_ALGORITHM_LAWS: Dict[type, Callable[..., Tuple[np.ndarray, float, str]]] = {
    PowerSampler: _power_law, BlockPowerSampler: _block_law, MCMCPowerSampler: _mcmc_law,
    SMCPowerSampler: _smc_law,
}


def measure(llm: llama_cpp.Llama, space: exact.Completions, alpha: float, samples: int,
            cache: PointCache, key_prefix: str) -> List[Dict]:
    """One row per sampler at its presets: TV to π of `samples` draws beside
    the exact sampler's noise quantile at that N; the exact law of the
    sampler's algorithm (algorithm_law), its TV to π (the bias by design) and
    the draws' TV to it beside its own noise quantile (plus its computation's
    error); mean rollout tokens and seconds per draw."""
    pi = space.power(alpha)
    noise = exact.tv_noise_quantile(pi, samples, QUANTILE)
    rows = []
    for label, sampler in samplers_at_presets(alpha):
        key = f"{key_prefix} {label} alpha={alpha} T={space.length} N={samples}"
        ref, ref_err, ref_what = algorithm_law(space, sampler)

        def compute(sampler=sampler, key=key, ref=ref) -> Dict:
            law, stats = exact.empirical(llm, sampler, space, samples, label=key)
            return dict(tv=exact.tv(law, pi), tv_to_algorithm=exact.tv(law, ref),
                        rollout_tokens=stats.get("rollout_tokens", stats.get("decoded_tokens", 0.0)),
                        seconds=stats["seconds_per_draw"])
        point = cache.get(key, compute)
        ref_noise = exact.tv_noise_quantile(ref, samples, QUANTILE) + ref_err
        rows.append(dict(sampler=label, noise=noise, within_noise=point["tv"] <= noise, algorithm=ref_what,
                         algorithm_tv_to_pi=exact.tv(ref, pi), algorithm_noise=ref_noise,
                         matches_algorithm=point["tv_to_algorithm"] <= ref_noise, **point))
    return rows


SMC_PARTICLES = (4, 16, 64, 256)
SMC_RAMPS = (0, 3)


def smc_bias(space: exact.Completions, alpha: float) -> List[Dict]:
    """SMC's bias (the TV of its algorithm's law to π, simulated) at N = 4, 16,
    64 and 256 particles, without and with the ramp over the whole output:
    how many particles a model needs, no draws of the implementation spent."""
    pi = space.power(alpha)
    rows = []
    for ramp in SMC_RAMPS:
        for n in SMC_PARTICLES:
            law, err = space.smc_law(SMCPowerSampler(alpha=alpha, particles=n, ramp=ramp))
            rows.append(dict(ramp=ramp, particles=n, tv=exact.tv(law, pi), error=err))
    return rows


def run(models: Sequence[str], out_dir: Path, alpha: float = 4.0, samples: int = 1000, length: int = 3,
        prompt: Sequence[int] = (1, 3)) -> Path:
    cache = PointCache(out_dir)
    results = []
    for model in models:
        llm = llama_cpp.Llama(model_path=str(model), n_ctx=512, verbose=False)
        try:
            n_vocab, eos = llm.n_vocab(), llm.token_eos()
            if n_vocab > 64:
                raise ValueError(f"model: the vocabulary of {model} ({n_vocab}) is too large to enumerate; use a "
                                 f"tiny model (<= 64)")
            space = exact.Completions(llm, list(prompt), length, eos)
            pi = space.power(alpha)
            rows = measure(llm, space, alpha, samples, cache, Path(model).name)
            results.append(dict(model=Path(model).name, n_vocab=n_vocab, outcomes=len(space.outcomes),
                                tv_lowtemp_to_pi=exact.tv(space.low_temperature(alpha), pi),
                                noise=exact.tv_noise_quantile(pi, samples, QUANTILE), samplers=rows,
                                smc_bias=smc_bias(space, alpha)))
        finally:
            llm.close()

    result = dict(alpha=alpha, length=length, samples=samples, quantile=QUANTILE, prompt=list(prompt),
                  models=results)
    lines = [f"# Exactness: every sequence-level sampler against π ∝ p^α (α = {alpha}, {length}-token outputs)", "",
             f"{samples} draws per sampler (seeds 0..{samples - 1}), prompt {list(prompt)}. *noise*: the "
             f"{QUANTILE:.0%} quantile of the TV an exact sampler of π gets with the same number of draws; a TV "
             f"above it is the sampler's bias. Presets as in `power.py` (their horizons exceed the "
             f"{length - 1} tokens left after the first). *Its algorithm's exact law*: what the sampler draws "
             f"with unlimited draws of its own randomness (power: exact futures over its K candidates; block "
             f"power, whose {length}-token outputs are shorter than a block: the best of L_tail base samples by "
             f"p^α; MCMC: the chain after its stages and steps; SMC: the algorithm at its N particles, simulated in NumPy), computed "
             f"exactly (block and SMC: Monte Carlo, its error added to the noise); its TV to π is the bias by design, and the draws' TV to it checks the "
             f"implementation.", "",
             f"Command: `llama-simplex eval exactness --model {','.join(r['model'] for r in results)} "
             f"--alpha {alpha:g} --samples {samples}` (the models: `python models/tiny_gguf.py tiny16-s1.gguf "
             f"--n-vocab 16 --seed 1`, and so on).", ""]
    for r in results:
        lines += [f"## {r['model']} (vocabulary {r['n_vocab']}, {r['outcomes']} outcomes)", "",
                  f"Token-wise low-temperature sampling (T = 1/α) is at exact TV {r['tv_lowtemp_to_pi']:.3f} from π.",
                  "", "| sampler | TV to π | noise (q99) | within noise | its algorithm's exact law: TV to π "
                  "| draws' TV to that law (noise) | rollout (MCMC: proposal) tokens per draw | ms per draw |",
                  "|---|---:|---:|:---:|---:|---:|---:|---:|"]
        for s in r["samplers"]:
            lines.append(f"| {s['sampler']} | {s['tv']:.3f} | {s['noise']:.3f} | {'yes' if s['within_noise'] else 'no'} "
                         f"| {s['algorithm_tv_to_pi']:.3f} ({s['algorithm']}) | {s['tv_to_algorithm']:.3f} "
                         f"({s['algorithm_noise']:.3f}) | {s['rollout_tokens']:.0f} | {1000 * s['seconds']:.1f} |")
        lines += ["", "SMC's bias: the TV to π of its algorithm's law (simulated, ± the simulation's error), by "
                  "particles N:", "", "| ramp | " + " | ".join(f"N = {n}" for n in SMC_PARTICLES) + " |",
                  "|---|" + "---:|" * len(SMC_PARTICLES)]
        for ramp in SMC_RAMPS:
            cells = [f"{b['tv']:.3f} ± {b['error']:.3f}" for b in r["smc_bias"] if b["ramp"] == ramp]
            lines.append(f"| {ramp or 'none'} | " + " | ".join(cells) + " |")
        lines.append("")
    save_figure(out_dir / "exactness.png", lambda ax: _draw(ax, result), figsize=(9, 4.5))
    return write_results(out_dir, "exactness", result, lines)


def _draw(ax, result: dict) -> None:
    models = result["models"]
    labels = [s["sampler"] for s in models[0]["samplers"]] if models else []
    width = 0.8 / max(len(models), 1)
    for j, m in enumerate(models):
        xs = [i + j * width for i in range(len(labels))]
        ax.bar(xs, [s["tv"] for s in m["samplers"]], width, label=f"{m['model']} (low temp {m['tv_lowtemp_to_pi']:.2f})")
        ax.hlines(m["noise"], xs[0] - width / 2, xs[-1] + width / 2, colors="gray", linestyles=":")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))])
    ax.set_xticklabels([label.replace("Sampler", "").replace(" (16 stages, 10 steps)", "") for label in labels],
                       rotation=20, fontsize=8)
    ax.set_ylabel("total variation to π")
    ax.set_title(f"Samplers vs the exact p^α (α = {result['alpha']}, {result['length']} tokens, "
                 f"{result['samples']} draws; dotted: exact sampler's q99)")
    ax.legend(fontsize=8)
