"""End-to-end generation benchmark on a real model (default: Gemma 3 270M).

1. Decode speed (tokens/s after the first token) of every sampler through
   llama_simplex.generate, and each one's ratio to plain top-k sampling,
   measured side by side (runs interleaved, medians reported).
2. sample_k(k) against k sequential generate calls, same sampler and length:
   wall time of each and the speed-up.
3. In-graph sampling (generate(..., backend_sampling=True)): for each
   decoder, tokens/s with our decoder in the model's graph, on our CPU path,
   and with llama.cpp's own in-graph chain of the same decoder (top-k ->
   temp -> dist, ...); and the per-token sampling time of each way on one
   row of the model's logits (in-graph: the sampling graph alone, computed
   on the CPU backend with the context's threads; CPU path: candidates
   filled and apply).

    python bench/bench_generate.py [--model PATH] [--tokens 64] [--repeats 3] [--k 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import sys
import time

import llama_cpp
import numpy as np

import llama_simplex as ls
from llama_simplex import _core
from llama_simplex.handles import context_address

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def decode_rate(llm, sampler, tokens: int, seed: int) -> float:
    """Tokens per second from the first generated token to the last."""
    stamps = []
    gen = ls.generate(llm, PROMPT, sampler, max_tokens=tokens, seed=seed,
                      callback=lambda tok, text: stamps.append(time.perf_counter()))
    n = len(gen.tokens)
    if n < 3:
        return float("nan")
    return (n - 1) / (stamps[n - 1] - stamps[0])


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


def in_graph_section(llm, tokens: int, repeats: int, timing_repeats: int) -> dict:
    """Part 3: tokens/s and per-token sampling time, in-graph against the CPU path and llama.cpp's in-graph chain."""
    llm.reset()
    llm.eval(llm.tokenize(PROMPT.encode()))
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),)).copy()
    llm.reset()
    threads = llama_cpp.llama_n_threads(llm.ctx)
    ways = ("ours in-graph", "ours CPU path", "llama.cpp in-graph")
    rates = {name: {w: [] for w in ways} for name in IN_GRAPH}
    native_rate(llm, ls.TopK(40).native(seed=0), 8, True)  # warm-up
    for rep in range(repeats):
        for name, (ours, theirs) in IN_GRAPH.items():
            rates[name]["ours in-graph"].append(native_rate(llm, ours.native(seed=rep), tokens, True))
            rates[name]["ours CPU path"].append(native_rate(llm, ours.native(seed=rep), tokens, False))
            if theirs is not None:
                rates[name]["llama.cpp in-graph"].append(native_rate(llm, theirs(rep), tokens, True))
    out = {}
    print(f"\n## In-graph sampling, {tokens} tokens, median of {repeats} interleaved runs; per-token sampling "
          f"time on one row of logits ({len(logits)} candidates, mean of {timing_repeats}; in-graph on the CPU "
          f"backend, {threads} threads)\n")
    print("| decoder | ours in-graph tok/s | ours CPU path tok/s | llama.cpp in-graph tok/s "
          "| ours in-graph ms | ours CPU path ms | llama.cpp in-graph ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (ours, theirs) in IN_GRAPH.items():
        med = {w: statistics.median(r) if r else float("nan") for w, r in rates[name].items()}
        ms = {"ours in-graph": _core.graph_seconds(ours.native(seed=0), logits, timing_repeats, threads),
              "ours CPU path": _core.cpu_path_seconds(ours.native(seed=0), logits, timing_repeats),
              "llama.cpp in-graph": (_core.graph_seconds(theirs(0), logits, timing_repeats, threads)
                                     if theirs is not None else None)}
        ms = {w: float("nan") if v is None else v * 1e3 for w, v in ms.items()}
        out[name] = {"tokens_per_s": med, "sampling_ms": ms}
        print(f"| {name} | " + " | ".join(f"{med[w]:.1f}" for w in ways) + " | "
              + " | ".join(f"{ms[w]:.3f}" for w in ways) + " |")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--json", default=None)
    ap.add_argument("--timing-repeats", type=int, default=20, help="per-token sampling time: runs averaged")
    ap.add_argument("--only-in-graph", action="store_true", help="part 3 only")
    args = ap.parse_args(argv)

    llm = ls.load_model(args.model, n_ctx=1024)
    if args.only_in_graph:
        in_graph = in_graph_section(llm, args.tokens, args.repeats, args.timing_repeats)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"in_graph": in_graph, "tokens": args.tokens}, f, indent=1)
        return 0
    samplers = {
        "top-k (k=40, T=0.8)": ls.TopK(k=40, temperature=0.8),
        "greedy": ls.Greedy(),
        "softmax (T=0.8)": ls.Softmax(temperature=0.8),
        "top-p (p=0.9, T=0.8)": ls.TopP(p=0.9, temperature=0.8),
        "min-p (0.05, T=0.8)": ls.MinP(p_min=0.05, temperature=0.8),
        "sparsemax (T=0.8)": ls.Sparsemax(temperature=0.8),
        "bok paper-0.01 (J=5, T=0.8)": ls.BestOfK.preset("paper-0.01", temperature=0.8),
        "bok paper-0.05 (J=5, T=0.8)": ls.BestOfK.preset("paper-0.05", temperature=0.8),
    }
    decode_rate(llm, ls.TopK(k=40), 8, 0)  # warm-up
    rates = {name: [] for name in samplers}
    for rep in range(args.repeats):
        for name, sampler in samplers.items():
            rates[name].append(decode_rate(llm, sampler, args.tokens, seed=rep))
    med = {name: statistics.median(r) for name, r in rates.items()}
    base = med["top-k (k=40, T=0.8)"]
    print(f"## Decode speed, {args.tokens} tokens, median of {args.repeats} interleaved runs\n")
    print("| sampler | tokens/s | ratio to top-k |")
    print("|---|---:|---:|")
    for name, rate in med.items():
        print(f"| {name} | {rate:.1f} | {rate / base:.3f} |")

    sampler = ls.TopK(k=40, temperature=0.8)
    ls.sample_k(llm, PROMPT, args.k, sampler, max_tokens=4, seed=0)  # builds its context once
    t_par, t_seq, n_par, n_seq = [], [], [], []
    for rep in range(args.repeats):
        t0 = time.perf_counter()
        s = ls.sample_k(llm, PROMPT, args.k, sampler, max_tokens=args.tokens, seed=rep)
        t_par.append(time.perf_counter() - t0)
        n_par.append(sum(len(t) for t in s.tokens))
        t0 = time.perf_counter()
        n = 0
        for i in range(args.k):
            n += len(ls.generate(llm, PROMPT, sampler, max_tokens=args.tokens, seed=rep * 1000 + i).tokens)
        t_seq.append(time.perf_counter() - t0)
        n_seq.append(n)
    tp, ts = statistics.median(t_par), statistics.median(t_seq)
    print(f"\n## sample_k(k={args.k}) against {args.k} sequential generate calls, {args.tokens} tokens each\n")
    print("| method | wall time (s) | tokens | tokens/s |")
    print("|---|---:|---:|---:|")
    print(f"| sample_k | {tp:.2f} | {statistics.median(n_par):.0f} | {statistics.median(n_par) / tp:.1f} |")
    print(f"| sequential generate | {ts:.2f} | {statistics.median(n_seq):.0f} | {statistics.median(n_seq) / ts:.1f} |")
    print(f"\nspeed-up (sequential time / sample_k time): {ts / tp:.2f}x; "
          f"per token: {(statistics.median(n_par) / tp) / (statistics.median(n_seq) / ts):.2f}x")
    in_graph = in_graph_section(llm, args.tokens, args.repeats, args.timing_repeats)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"decode_tokens_per_s": med, "sample_k_s": tp, "sequential_s": ts,
                       "tokens": args.tokens, "k": args.k, "in_graph": in_graph}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
