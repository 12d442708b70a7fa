"""`llama-simplex eval quality`: what each sampler buys across temperatures on
a real model: mean base log-likelihood per token (under the model at
temperature 1), distinct-n diversity of k completions per prompt, and the
coverage of the top-M alternatives of the first token by those k draws.
Completions come from sample_k (k sequences on one KV cache); power sampling
(block form, cpu-small preset, alpha = 1/T: p^alpha is what temperature T
approximates token by token) runs k seeded generations and its completions
are scored under the base model afterwards. Results are cached per (sampler,
temperature) in DIR/cache.json so a run resumes."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import llama_cpp
import numpy as np

from ..generation import generate
from ..handles import load_model, model_address
from ..multi_sample import Samples, sample_k
from ..power import BlockPowerSampler
from ..sequence import SequenceSampler
from ..samplers import BestOfK, MinP, Sampler, Softmax, Sparsemax, TopK, TopP
from .. import _core
from ..report import save_figure, write_results
from .cache import PointCache

DEFAULT_PROMPTS = [
    "The best way to learn a new language is",
    "Once upon a time, in a small village by the sea,",
    "Q: What is the capital of Australia?\nA:",
    "Three reasons to exercise every day are",
    "The recipe calls for flour, sugar and",
    "In 1969, the first people to walk on the Moon",
]


def samplers_at(t: float) -> Dict[str, Sampler]:
    return {
        "softmax": Softmax(temperature=t),
        "top-k 40": TopK(k=40, temperature=t),
        "top-p 0.9": TopP(p=0.9, temperature=t),
        "min-p 0.05": MinP(p_min=0.05, temperature=t),
        "sparsemax": Sparsemax(temperature=t),
        "bok paper-0.05": BestOfK.preset("paper-0.05", temperature=t),
        "power block α=1/T": BlockPowerSampler.preset("cpu-small", alpha=1.0 / t),
    }


def _last_logprobs(llm: llama_cpp.Llama) -> np.ndarray:
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
    z = logits.astype(np.float64) - logits.max()
    return z - np.log(np.exp(z).sum())


def _base_loglik(llm: llama_cpp.Llama, ids: List[int], tokens: List[int]) -> float:
    """log p(tokens | ids) under the model at temperature 1."""
    llm.reset()
    llm.eval(ids)
    total = 0.0
    for t in tokens:
        total += float(_last_logprobs(llm)[t])
        llm.eval([t])
    return total


def _completions(llm: llama_cpp.Llama, ids: List[int], k: int, sampler: Sampler, max_tokens: int) -> Samples:
    """k completions of `ids`: one sample_k call, or k seeded power-sampling runs."""
    if not isinstance(sampler, SequenceSampler):
        return sample_k(llm, ids, k, sampler, max_tokens=max_tokens, seed=0, add_special=False)
    gens = [generate(llm, ids, sampler, max_tokens=max_tokens, seed=s, add_special=False, progress=False)
            for s in range(k)]
    tokens = [g.tokens for g in gens]
    return Samples(texts=[g.text for g in gens], tokens=tokens,
                   logliks=[_base_loglik(llm, ids, t) for t in tokens],
                   finish_reasons=[g.finish_reason for g in gens], seed=0, sampler=sampler)


def _distinct(token_lists: List[List[int]], n: int) -> float:
    grams, total = set(), 0
    for toks in token_lists:
        for i in range(len(toks) - n + 1):
            grams.add(tuple(toks[i:i + n]))
            total += 1
    return len(grams) / total if total else 0.0


def _first_token_top(llm: llama_cpp.Llama, ids: List[int], m: int) -> set:
    llm.reset()
    llm.eval(ids)
    return set(np.argsort(-_last_logprobs(llm), kind="stable")[:m].tolist())


def run(model: Optional[str], out_dir: Path, temperatures: Sequence[float] = (0.1, 0.4, 0.7, 1.0), k: int = 8,
        max_tokens: int = 24, m: int = 8, prompts: Optional[Sequence[str]] = None) -> Path:
    cache = PointCache(out_dir)
    llm = load_model(model, n_ctx=1024)
    prompts = list(prompts or DEFAULT_PROMPTS)
    ids = [_core.tokenize(model_address(llm), p, True, False) for p in prompts]
    tops = [_first_token_top(llm, x, m) for x in ids]
    rows = []
    t0 = time.perf_counter()
    total = len(temperatures) * len(samplers_at(1.0))
    done = 0
    for t in temperatures:
        for name, sampler in samplers_at(t).items():
            key = f"{name} T={t} k={k} n={max_tokens} m={m} prompts={len(prompts)}"

            def measure(sampler: Sampler = sampler, name: str = name, t: float = t) -> dict:
                lls, ntok, d1, d2, cov = [], 0, [], [], []
                for x, top in zip(ids, tops):
                    s = _completions(llm, x, k, sampler, max_tokens)
                    lls += s.logliks
                    ntok += sum(len(tk) for tk in s.tokens)
                    d1.append(_distinct(s.tokens, 1))
                    d2.append(_distinct(s.tokens, 2))
                    firsts = {tk[0] for tk in s.tokens if tk}
                    cov.append(len(firsts & top) / m)
                return dict(sampler=name, temperature=t, loglik_per_token=float(sum(lls) / max(ntok, 1)),
                            distinct_1=float(np.mean(d1)), distinct_2=float(np.mean(d2)),
                            top_m_coverage=float(np.mean(cov)))
            rows.append(cache.get(key, measure))
            done += 1
            print(f"\r[eval] quality: {done}/{total} (sampler, temperature) points, "
                  f"{time.perf_counter() - t0:.0f} s", end="" if done < total else "\n", file=sys.stderr, flush=True)
    result = dict(model=str(model or "default"), k=k, max_tokens=max_tokens, m=m, prompts=prompts, rows=rows)
    lines = [f"# Quality across temperatures ({len(prompts)} prompts, k = {k} completions of {max_tokens} tokens "
             f"each, seed 0)", "",
             "| sampler | T | log-likelihood / token | distinct-1 | distinct-2 | top-%d coverage |" % m,
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['sampler']} | {r['temperature']} | {r['loglik_per_token']:.3f} | {r['distinct_1']:.3f} | "
              f"{r['distinct_2']:.3f} | {r['top_m_coverage']:.3f} |" for r in rows]
    save_figure(out_dir / "quality.png", lambda axes: _draw(axes, result), ncols=3, figsize=(13, 4))
    return write_results(out_dir, "quality", result, lines)


def _draw(axes, result: dict) -> None:
    names = list(dict.fromkeys(r["sampler"] for r in result["rows"]))
    for metric, ax, label in (("loglik_per_token", axes[0], "base log-likelihood per token"),
                              ("distinct_2", axes[1], "distinct-2"),
                              ("top_m_coverage", axes[2], f"top-{result['m']} coverage of {result['k']} draws")):
        for n in names:
            rs = [r for r in result["rows"] if r["sampler"] == n]
            ax.plot([r["temperature"] for r in rs], [r[metric] for r in rs], "o-", label=n)
        ax.set_xlabel("temperature")
        ax.set_title(label)
    axes[0].legend(fontsize=8)
