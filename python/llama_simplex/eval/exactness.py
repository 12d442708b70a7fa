"""`llama-simplex eval exactness`: how close each sampler's empirical law of
two-token completions is to its exact target, on a model small enough to
enumerate (a tiny generated GGUF: `python models/tiny_gguf.py tiny.gguf
--n-vocab 8`).

- power sampling (token level, K = |V|, H = 1): total variation (TV) to
  π ∝ p^α as a function of the number of rollouts M, with and without the
  jackknife; token-wise low-temperature sampling's exact TV to π beside it;
- temperature sampling (Softmax(T)): TV to its exact law p^(1/T) token-wise.
Each point is cached in DIR/cache.json, so an interrupted run resumes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence

import llama_cpp
import numpy as np

from ..generation import generate
from ..power import PowerSampler
from ..samplers import Softmax
from . import exact
from ..report import save_figure, write_results
from .cache import PointCache


def _progress(label: str, i: int, n: int, t0: float) -> None:
    rate = i / max(time.perf_counter() - t0, 1e-9)
    print(f"\r[eval] {label}: {i}/{n} samples ({rate:.0f}/s)", end="" if i < n else "\n", file=sys.stderr,
          flush=True)


def _empirical(llm, prompt, sampler, n: int, index: Dict, eos: int, label: str) -> np.ndarray:
    counts = np.zeros(len(index))
    t0 = time.perf_counter()
    for seed in range(n):
        toks = generate(llm, prompt, sampler, max_tokens=2, seed=seed, add_special=False, progress=False).tokens
        counts[index[exact.outcome(toks, eos)]] += 1
        if (seed + 1) % 100 == 0 or seed + 1 == n:
            _progress(label, seed + 1, n, t0)
    return counts / n


def run(model: str, out_dir: Path, alpha: float = 2.0, rollouts: Sequence[int] = (1, 2, 4, 8, 16, 32),
        temperatures: Sequence[float] = (0.5, 1.0, 1.5), samples: int = 1000, prompt: Sequence[int] = (1, 3)) -> Path:
    cache = PointCache(out_dir)
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=512, verbose=False)
    n_vocab, eos = llm.n_vocab(), llm.token_eos()
    if n_vocab > 64:
        raise ValueError(f"model: the vocabulary ({n_vocab}) is too large to enumerate; use a tiny model (<= 64)")
    p1, p2 = exact.two_step_logprobs(llm, list(prompt))
    outcomes, pi, low = exact.targets(p1, p2, alpha, eos)
    index = {o: i for i, o in enumerate(outcomes)}
    bound = exact.tv_bound(pi, samples)

    power_rows: List[dict] = []
    for m in rollouts:
        for jk in (False, True):
            if jk and m < 2:
                continue
            sampler = PowerSampler(alpha=alpha, candidates=n_vocab, rollouts=m, horizon=1, jackknife=jk)
            key = f"power alpha={alpha} M={m} jackknife={jk} N={samples}"
            d = cache.get(key, lambda: exact.tv(_empirical(llm, list(prompt), sampler, samples, index, eos, key), pi))
            power_rows.append(dict(rollouts=m, jackknife=jk, tv=d))
    temp_rows: List[dict] = []
    for t in temperatures:
        _o, _pi_t, law = exact.targets(p1, p2, 1.0 / t, eos)
        key = f"softmax T={t} N={samples}"
        d = cache.get(key, lambda: exact.tv(_empirical(llm, list(prompt), Softmax(temperature=t), samples, index, eos, key),
                                        law))
        temp_rows.append(dict(temperature=t, tv=d, bound=exact.tv_bound(law, samples)))
    llm.close()

    result = dict(model=str(model), alpha=alpha, samples=samples, outcomes=len(outcomes), tv_bound_pi=bound,
                  tv_lowtemp_to_pi=exact.tv(low, pi), power=power_rows, temperature=temp_rows)
    lines = [f"# Exactness on {Path(model).name} (vocabulary {n_vocab}, two-token completions, {len(outcomes)} outcomes)",
             "", f"Power sampling, alpha = {alpha}, K = {n_vocab}, H = 1, {samples} samples per point. Sampling "
             f"noise alone gives E TV <= {bound:.3f}; token-wise low-temperature sampling (T = 1/alpha) is at "
             f"exact TV {result['tv_lowtemp_to_pi']:.3f} from π.", "",
             "| rollouts M | TV to π, plug-in | TV to π, jackknife |", "|---:|---:|---:|"]
    for m in rollouts:
        plug = next((r["tv"] for r in power_rows if r["rollouts"] == m and not r["jackknife"]), None)
        jk = next((r["tv"] for r in power_rows if r["rollouts"] == m and r["jackknife"]), None)
        lines.append(f"| {m} | {plug:.3f} | " + (f"{jk:.3f} |" if jk is not None else "— |"))
    lines += ["", "Temperature sampling against its exact law:", "", "| T | TV | noise bound |", "|---:|---:|---:|"]
    lines += [f"| {r['temperature']} | {r['tv']:.3f} | {r['bound']:.3f} |" for r in temp_rows]
    save_figure(out_dir / "exactness.png", lambda ax: _draw(ax, result), figsize=(7, 4.2))
    return write_results(out_dir, "exactness", result, lines)


def _draw(ax, result: dict) -> None:
    for jk, style in ((False, "o-"), (True, "s-")):
        rows = [r for r in result["power"] if r["jackknife"] == jk]
        ax.plot([r["rollouts"] for r in rows], [r["tv"] for r in rows], style,
                label="power, jackknife" if jk else "power, plug-in")
    ax.axhline(result["tv_lowtemp_to_pi"], color="tab:red", linestyle="--", label="low temperature (exact)")
    ax.axhline(result["tv_bound_pi"], color="gray", linestyle=":", label="sampling noise bound")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("rollouts per candidate M")
    ax.set_ylabel("total variation to π")
    ax.set_title(f"Power sampling vs the exact p^α (α = {result['alpha']}, {result['samples']} samples)")
    ax.legend()
