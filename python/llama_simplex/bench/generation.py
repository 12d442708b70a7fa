"""End-to-end generation benchmark on a real model (default: Gemma 3 270M).

1. Decode speed (tokens/s after the first token) through the same C++ decode
   loop (``llama_simplex.generate``) with each of our samplers and with
   llama.cpp's own sampler chains (built by llama_cpp, adopted by the loop),
   in repeated rounds. Each row is compared with its reference arm *in the
   same round* (our top-p against llama.cpp's temp + top_p + dist, Best-of-K
   against our top-k, ...), so that load on a shared machine, which drifts
   over seconds, cancels in the per-round ratio. Arms that are compared run
   next to each other, their order alternating between rounds, and the
   groups' order rotates. Reported: the median of the per-round ratios, their
   interquartile range, and a distribution-free 95% confidence interval of
   the median (order statistics of the binomial); the verdict against a
   row's target is taken from that interval: PASS when its lower end is at
   or above the target, FAIL when its upper end is below, otherwise
   "within noise" (not shown either way).
2. sample_k(k) against k sequential generate calls, same sampler and length:
   wall time of each and the speed-up (rounds alternating the two).
3. In-graph sampling (generate(..., backend_sampling=True)): for each
   decoder, tokens/s with our decoder in the model's graph (on this CPU
   backend: its host form), on our CPU path, and with llama.cpp's own
   in-graph chain of the same decoder (top-k -> temp -> dist, ...), the
   three interleaved in each round (their order rotating), with the
   per-round ratio in-graph / CPU path, the 95% interval of its median and
   the target >= 1 (PASS / FAIL / within noise as in 1.; at least 6
   rounds); and the per-token sampling time of
   each way on one row of the model's logits (in-graph: the sampling graph
   alone, computed on the CPU backend with the context's threads, in the
   host form and in the portable form that CUDA and Metal run,
   LLAMA_SIMPLEX_GRAPH_FORM=portable; CPU path: candidates filled and
   apply), measured in every round, median over the rounds (the portable
   form, much slower on a CPU, in the first round only).

    llama-simplex bench --parts generation [--model PATH]
    python -m llama_simplex.bench.generation [--model PATH] [--tokens 64] [--rounds 20] [--k 8] [--json out.json]

A new row is one entry of ``arms()`` (its label, how to build its sampler,
the arm it is compared with and the target).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import llama_cpp

import llama_cpp
import numpy as np

import llama_simplex as ls
from llama_simplex import _core
from llama_simplex.handles import context_address

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."

# Targets (tokens/s of the row over its reference arm's, same round):
NO_SLOWER = 0.98  # ours against llama.cpp's equivalent chain: no slower, allowing 2%
BOK_VS_TOP_K = 0.95  # Best-of-K (J = 5) against top-k sampling, the project's target


class LlamaCppChain(ls.Sampler):
    """A chain of llama.cpp's own samplers (the reference arms), made by
    llama_cpp and run by our decode loop, so that only the sampler differs."""

    name = "llama.cpp"

    def __init__(self, build: Callable[[int], Sequence[object]]) -> None:
        self._build = build  # seed -> llama_cpp sampler pointers, in chain order

    def params(self) -> Dict[str, object]:
        return {}

    def native(self, seed: Optional[int] = None) -> _core.NativeSampler:
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        for s in self._build(0 if seed is None else seed):
            llama_cpp.llama_sampler_chain_add(chain, s)  # the chain owns its members
        return _core.adopt_sampler(ctypes.cast(chain, ctypes.c_void_p).value)  # and the loop owns the chain


@dataclass
class Arm:
    label: str
    make: Callable[[], ls.Sampler]
    ref: Optional[str] = None  # the label of the arm this one is compared with (same group)
    target: Optional[float] = None  # the least ratio to ref that passes


def arms() -> List[Arm]:
    """The rows, in report order; each comparison's reference arm comes first in its group."""
    ld = llama_cpp
    return [
        Arm("llama.cpp greedy", lambda: LlamaCppChain(lambda s: [ld.llama_sampler_init_greedy()])),
        Arm("greedy", ls.Greedy, "llama.cpp greedy", NO_SLOWER),
        Arm("llama.cpp temp(0.8) + dist",
            lambda: LlamaCppChain(lambda s: [ld.llama_sampler_init_temp(0.8), ld.llama_sampler_init_dist(s)])),
        Arm("softmax (T=0.8)", lambda: ls.Softmax(temperature=0.8), "llama.cpp temp(0.8) + dist", NO_SLOWER),
        Arm("llama.cpp top_k(40) + temp(0.8) + dist",
            lambda: LlamaCppChain(lambda s: [ld.llama_sampler_init_top_k(40), ld.llama_sampler_init_temp(0.8),
                                             ld.llama_sampler_init_dist(s)])),
        Arm("top-k (k=40, T=0.8)", lambda: ls.TopK(k=40, temperature=0.8),
            "llama.cpp top_k(40) + temp(0.8) + dist", NO_SLOWER),
        Arm("bok paper-0.01 (J=5, T=0.8)", lambda: ls.BestOfK.preset("paper-0.01", temperature=0.8),
            "top-k (k=40, T=0.8)", BOK_VS_TOP_K),
        Arm("bok paper-0.05 (J=5, T=0.8)", lambda: ls.BestOfK.preset("paper-0.05", temperature=0.8),
            "top-k (k=40, T=0.8)", BOK_VS_TOP_K),
        Arm("llama.cpp temp(0.8) + top_p(0.9) + dist",
            lambda: LlamaCppChain(lambda s: [ld.llama_sampler_init_temp(0.8), ld.llama_sampler_init_top_p(0.9, 1),
                                             ld.llama_sampler_init_dist(s)])),
        Arm("top-p (p=0.9, T=0.8, temperature order)", lambda: ls.TopP(p=0.9, temperature=0.8, order="temperature"),
            "llama.cpp temp(0.8) + top_p(0.9) + dist", NO_SLOWER),
        Arm("llama.cpp min_p(0.05) + temp(0.8) + dist",
            lambda: LlamaCppChain(lambda s: [ld.llama_sampler_init_min_p(0.05, 1), ld.llama_sampler_init_temp(0.8),
                                             ld.llama_sampler_init_dist(s)])),
        Arm("min-p (0.05, T=0.8)", lambda: ls.MinP(p_min=0.05, temperature=0.8),
            "llama.cpp min_p(0.05) + temp(0.8) + dist", NO_SLOWER),
        Arm("sparsemax (T=0.8)", lambda: ls.Sparsemax(temperature=0.8), "top-k (k=40, T=0.8)", None),
    ]


def groups(rows: Sequence[Arm]) -> List[List[Arm]]:
    """Arms that are compared, together: each arm joins its reference's group."""
    root: Dict[str, str] = {}
    out: Dict[str, List[Arm]] = {}
    for a in rows:
        root[a.label] = root[a.ref] if a.ref is not None else a.label
        out.setdefault(root[a.label], []).append(a)
    return list(out.values())


def round_order(rows: Sequence[Arm], r: int) -> List[Arm]:
    """Round r's running order: the groups rotated by r, each group reversed on odd rounds."""
    gs = groups(rows)
    gs = gs[r % len(gs):] + gs[:r % len(gs)]
    return [a for g in gs for a in (g if r % 2 == 0 else g[::-1])]


def median_ci(xs: Sequence[float], level: float = 0.95) -> Optional[Tuple[float, float]]:
    """A distribution-free confidence interval of the median: the order
    statistics (j, n + 1 - j) with P(j <= B <= n - j) >= level for
    B ~ Binomial(n, 1/2), the narrowest such; None when no interval of the
    sample has that coverage (n < 6 at 95%)."""
    s = sorted(xs)
    n = len(s)
    j = 0  # the largest j (1-based) whose interval still has the coverage
    for c in range(1, n // 2 + 1):
        tail = sum(math.comb(n, i) for i in range(c)) / 2 ** n  # P(B < c) = P(B > n - c)
        if 1 - 2 * tail >= level:
            j = c
    return (s[j - 1], s[n - j]) if j else None


def quartiles(xs: Sequence[float]) -> Tuple[float, float]:
    q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else [xs[0]] * 3
    return q[0], q[2]


def verdict(ci: Optional[Tuple[float, float]], target: Optional[float]) -> str:
    if target is None:
        return "—"
    if ci is None:
        return "too few rounds"
    if ci[0] >= target:
        return "PASS"
    if ci[1] < target:
        return "FAIL"
    return "within noise"


def decode_rate(llm, sampler: ls.Sampler, tokens: int, seed: int) -> float:
    """Tokens per second after the first generated token: 1 / the median time
    between consecutive tokens. The median, not the mean: a token delayed
    because another process took the core says nothing about the sampler, and
    on a shared machine such delays decide the mean."""
    stamps: List[float] = []
    gen = ls.generate(llm, PROMPT, sampler, max_tokens=tokens, seed=seed,
                      callback=lambda tok, text: stamps.append(time.perf_counter()))
    n = min(len(gen.tokens), len(stamps))
    if n < 3:
        return float("nan")
    return 1.0 / statistics.median(b - a for a, b in zip(stamps[:n - 1], stamps[1:n]))


def measure(llm, rows: Sequence[Arm], rounds: int, tokens: int, log=None) -> Dict[str, List[float]]:
    """tokens/s of every arm in every round (rounds x arms generations)."""
    samplers = {a.label: a.make() for a in rows}
    rates: Dict[str, List[float]] = {a.label: [] for a in rows}
    for r in range(rounds):
        for a in round_order(rows, r):
            rates[a.label].append(decode_rate(llm, samplers[a.label], tokens, seed=r))
        if log:
            log(f"round {r + 1}/{rounds} done")
    return rates


def summarise(rows: Sequence[Arm], rates: Dict[str, List[float]]) -> List[dict]:
    out = []
    for a in rows:
        row = dict(label=a.label, tokens_per_s=statistics.median(rates[a.label]), ref=a.ref, target=a.target)
        if a.ref is not None:
            ratios = [x / y for x, y in zip(rates[a.label], rates[a.ref]) if x == x and y == y]
            row.update(ratios=ratios, ratio=statistics.median(ratios), iqr=quartiles(ratios),
                       ci95=median_ci(ratios))
            row["verdict"] = verdict(row["ci95"], a.target)
        out.append(row)
    return out


def markdown(summary: Sequence[dict], rounds: int, tokens: int) -> str:
    lines = [f"## Decode speed, {tokens} tokens, {rounds} rounds (arms interleaved)\n",
             "tokens/s: 1 / the median time between consecutive tokens of a run. "
             "Each ratio is this row's tokens/s over its reference's in the same round; median of the rounds, "
             "their interquartile range, and a 95% confidence interval of the median (order statistics). "
             "Verdict from the interval: PASS when it lies at or above the target, FAIL when below, "
             "else within noise.\n",
             "| sampler | tokens/s (median) | compared with | ratio (median) | IQR | 95% CI | target | verdict |",
             "|---|---:|---|---:|---|---|---|---|"]
    for r in summary:
        if r["ref"] is None:
            lines.append(f"| {r['label']} | {r['tokens_per_s']:.1f} | — | | | | | |")
            continue
        target = "—" if r["target"] is None else f"≥ {r['target']:.2f}"
        ci = "—" if r["ci95"] is None else f"{r['ci95'][0]:.3f}–{r['ci95'][1]:.3f}"
        lines.append(f"| {r['label']} | {r['tokens_per_s']:.1f} | {r['ref']} | {r['ratio']:.3f} | "
                     f"{r['iqr'][0]:.3f}–{r['iqr'][1]:.3f} | {ci} | {target} | {r['verdict']} |")
    return "\n".join(lines)


def bench_sample_k(llm, k: int, tokens: int, rounds: int) -> dict:
    sampler = ls.TopK(k=40, temperature=0.8)
    ls.sample_k(llm, PROMPT, k, sampler, max_tokens=4, seed=0)  # builds its context once
    t_par, t_seq, n_par, n_seq = [], [], [], []
    for rep in range(rounds):
        def parallel() -> None:
            t0 = time.perf_counter()
            s = ls.sample_k(llm, PROMPT, k, sampler, max_tokens=tokens, seed=rep)
            t_par.append(time.perf_counter() - t0)
            n_par.append(sum(len(t) for t in s.tokens))

        def sequential() -> None:
            t0 = time.perf_counter()
            n = sum(len(ls.generate(llm, PROMPT, sampler, max_tokens=tokens, seed=rep * 1000 + i).tokens)
                    for i in range(k))
            t_seq.append(time.perf_counter() - t0)
            n_seq.append(n)

        for run in ((parallel, sequential) if rep % 2 == 0 else (sequential, parallel)):
            run()
    speedups = [s / p for s, p in zip(t_seq, t_par)]
    return dict(sample_k_s=statistics.median(t_par), sequential_s=statistics.median(t_seq),
                sample_k_tokens=statistics.median(n_par), sequential_tokens=statistics.median(n_seq),
                speedup=statistics.median(speedups), speedup_range=(min(speedups), max(speedups)))


def native_rate(llm, native, tokens: int, backend_sampling: bool) -> float:
    """decode_rate for a native sampler (ours or a llama.cpp chain) run by the C++ loop."""
    gen = _core.Generator(context_address(llm), native, llm.tokenize(PROMPT.encode()), tokens, [],
                          backend_sampling=backend_sampling)
    stamps = [time.perf_counter() for _ in gen]
    llm.reset()  # the CPU path decodes in llm's context: llama_cpp must not reuse it
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) >= 3 else float("nan")


def llama_chain(*members) -> _core.NativeSampler:
    """llama.cpp's own samplers in a llama.cpp chain, as a native sampler."""
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    for m in members:
        llama_cpp.llama_sampler_chain_add(chain, m)
    return _core.adopt_sampler(ctypes.cast(chain, ctypes.c_void_p).value)


# Each decoder of ours with its in-graph form, and llama.cpp's chain that
# computes the same q (None: llama.cpp has none).
IN_GRAPH = {
    "greedy": (ls.Greedy(), lambda seed: llama_chain(llama_cpp.llama_sampler_init_greedy())),
    "softmax (T=0.8)": (ls.Softmax(0.8), lambda seed: llama_chain(llama_cpp.llama_sampler_init_temp(0.8),
                                                                  llama_cpp.llama_sampler_init_dist(seed))),
    "top-k (k=40, T=0.8)": (ls.TopK(40, 0.8), lambda seed: llama_chain(
        llama_cpp.llama_sampler_init_top_k(40), llama_cpp.llama_sampler_init_temp(0.8),
        llama_cpp.llama_sampler_init_dist(seed))),
    "top-p (p=0.9, T=0.8)": (ls.TopP(0.9, 0.8), lambda seed: llama_chain(
        llama_cpp.llama_sampler_init_top_p(0.9, 1), llama_cpp.llama_sampler_init_temp(0.8),
        llama_cpp.llama_sampler_init_dist(seed))),
    "min-p (0.05, T=0.8)": (ls.MinP(0.05, 0.8), lambda seed: llama_chain(
        llama_cpp.llama_sampler_init_min_p(0.05, 1), llama_cpp.llama_sampler_init_temp(0.8),
        llama_cpp.llama_sampler_init_dist(seed))),
    "sparsemax (T=0.8)": (ls.Sparsemax(0.8), None),
    "bok paper-0.05 (J=5, T=0.8)": (ls.BestOfK.preset("paper-0.05", temperature=0.8), None),
}


@contextlib.contextmanager
def graph_form(form: str):
    """LLAMA_SIMPLEX_GRAPH_FORM=form while the block runs (read at backend_init)."""
    before = os.environ.get("LLAMA_SIMPLEX_GRAPH_FORM")
    os.environ["LLAMA_SIMPLEX_GRAPH_FORM"] = form
    try:
        yield
    finally:
        if before is None:
            del os.environ["LLAMA_SIMPLEX_GRAPH_FORM"]
        else:
            os.environ["LLAMA_SIMPLEX_GRAPH_FORM"] = before


WAYS = ("ours in-graph", "ours CPU path", "llama.cpp in-graph")
TIMED = ("ours in-graph", "ours in-graph portable", "ours CPU path", "llama.cpp in-graph")


def in_graph_section(llm, tokens: int, repeats: int, timing_repeats: int) -> dict:
    """Part 3: tokens/s and per-token sampling time, in-graph against the CPU path and llama.cpp's in-graph chain."""
    llm.reset()
    llm.eval(llm.tokenize(PROMPT.encode()))
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),)).copy()
    llm.reset()
    threads = llama_cpp.llama_n_threads(llm.ctx)
    rates = {name: {w: [] for w in WAYS} for name in IN_GRAPH}
    ratios = {name: [] for name in IN_GRAPH}
    ms = {name: {w: [] for w in TIMED} for name in IN_GRAPH}
    load = [os.getloadavg()[0]]
    native_rate(llm, ls.TopK(40).native(seed=0), 8, True)  # warm-up
    for rep in range(repeats):
        for name, (ours, theirs) in IN_GRAPH.items():
            runs = {"ours in-graph": lambda: native_rate(llm, ours.native(seed=rep), tokens, True),
                    "ours CPU path": lambda: native_rate(llm, ours.native(seed=rep), tokens, False)}
            if theirs is not None:
                runs["llama.cpp in-graph"] = lambda: native_rate(llm, theirs(rep), tokens, True)
            order = list(runs)
            order = order[rep % len(order):] + order[:rep % len(order)]  # load drifts: rotate who goes first
            got = {w: runs[w]() for w in order}
            for w, r in got.items():
                rates[name][w].append(r)
            ratios[name].append(got["ours in-graph"] / got["ours CPU path"])
            t = ms[name]
            t["ours in-graph"].append(_core.graph_seconds(ours.native(seed=0), logits, timing_repeats, threads))
            if rep == 0:  # the slow one (full-vocabulary element-wise passes): timed in the first round only
                with graph_form("portable"):
                    t["ours in-graph portable"].append(_core.graph_seconds(ours.native(seed=0), logits,
                                                                           timing_repeats, threads))
            t["ours CPU path"].append(_core.cpu_path_seconds(ours.native(seed=0), logits, timing_repeats))
            t["llama.cpp in-graph"].append(_core.graph_seconds(theirs(0), logits, timing_repeats, threads)
                                           if theirs is not None else None)
        load.append(os.getloadavg()[0])
    out = {}
    print(f"\n## In-graph sampling, {tokens} tokens, {repeats} interleaved rounds (median tokens/s; ratio "
          f"in-graph / CPU path per round: median [min, max], the 95% interval of its median, and the target "
          f">= 1: PASS when that interval lies at or above 1); per-token sampling time on one row of logits "
          f"({len(logits)} candidates, mean of {timing_repeats}, median over the rounds; in-graph on the CPU "
          f"backend, {threads} threads); 1-minute load average {min(load):.1f}-{max(load):.1f}\n")
    print("| decoder | ours in-graph tok/s | ours CPU path tok/s | llama.cpp in-graph tok/s | in-graph / CPU path "
          "| 95% CI of its median | >= 1 "
          "| ours in-graph (host) ms | ours in-graph (portable) ms | ours CPU path ms | llama.cpp in-graph ms |")
    print("|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|")
    for name in IN_GRAPH:
        med = {w: statistics.median(r) if r else float("nan") for w, r in rates[name].items()}
        r = ratios[name]
        ms_med = {w: (statistics.median(v) * 1e3 if v and v[0] is not None else float("nan"))
                  for w, v in ms[name].items()}
        ci = median_ci(r)
        out[name] = {"tokens_per_s": med, "tokens_per_s_rounds": rates[name],
                     "ratio_in_graph_to_cpu_path": {"median": statistics.median(r), "min": min(r), "max": max(r),
                                                    "ci95": ci, "verdict": verdict(ci, 1.0), "rounds": r},
                     "sampling_ms": ms_med}
        print(f"| {name} | " + " | ".join(f"{med[w]:.1f}" for w in WAYS)
              + f" | {statistics.median(r):.3f} [{min(r):.3f}, {max(r):.3f}] | "
              + (f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "—") + f" | {verdict(ci, 1.0)} | "
              + " | ".join(f"{ms_med[w]:.3f}" for w in TIMED) + " |")
    return {"decoders": out, "load_average_1min": load, "threads": threads, "rounds": repeats}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=20, help="rounds of every arm (default 20)")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--sample-k-rounds", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--in-graph-rounds", type=int, default=3, help="part 3: interleaved runs of each way (default 3)")
    ap.add_argument("--timing-repeats", type=int, default=20, help="per-token sampling time: runs averaged")
    ap.add_argument("--only-in-graph", action="store_true", help="part 3 only")
    args = ap.parse_args(argv)
    if min(args.rounds, args.k, args.sample_k_rounds, args.in_graph_rounds, args.timing_repeats) < 1 or args.tokens < 3:
        ap.error("--rounds, --k, --sample-k-rounds, --in-graph-rounds, --timing-repeats must be >= 1 and --tokens >= 3")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    llm = ls.load_model(args.model, n_ctx=1024)
    if args.only_in_graph:
        in_graph = in_graph_section(llm, args.tokens, args.in_graph_rounds, args.timing_repeats)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"in_graph": in_graph, "tokens": args.tokens}, f, indent=1)
        return 0
    rows = arms()
    decode_rate(llm, ls.TopK(k=40), 8, 0)  # warm-up
    t0 = time.perf_counter()
    rates = measure(llm, rows, args.rounds, args.tokens, log)
    summary = summarise(rows, rates)
    print(markdown(summary, args.rounds, args.tokens))

    sk = bench_sample_k(llm, args.k, args.tokens, args.sample_k_rounds)
    tp, ts = sk["sample_k_s"], sk["sequential_s"]
    print(f"\n## sample_k(k={args.k}) against {args.k} sequential generate calls, {args.tokens} tokens each, "
          f"{args.sample_k_rounds} rounds (alternating)\n")
    print("| method | wall time (s) | tokens | tokens/s |")
    print("|---|---:|---:|---:|")
    print(f"| sample_k | {tp:.2f} | {sk['sample_k_tokens']:.0f} | {sk['sample_k_tokens'] / tp:.1f} |")
    print(f"| sequential generate | {ts:.2f} | {sk['sequential_tokens']:.0f} | {sk['sequential_tokens'] / ts:.1f} |")
    print(f"\nspeed-up (sequential time / sample_k time, median of the rounds): {sk['speedup']:.2f}x "
          f"(rounds {sk['speedup_range'][0]:.2f}–{sk['speedup_range'][1]:.2f})")
    print(f"\n{time.perf_counter() - t0:.0f} s; `llama-simplex bench --parts generation`.")
    in_graph = in_graph_section(llm, args.tokens, args.in_graph_rounds, args.timing_repeats)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": summary, "rates": rates, "rounds": args.rounds, "tokens": args.tokens,
                       "k": args.k, **sk, "in_graph": in_graph, "decode_tokens_per_s": {r["label"]: r["tokens_per_s"] for r in summary}},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
