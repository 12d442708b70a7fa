"""End-to-end generation benchmark on a real model (default: Gemma 3 270M).

1. Decode speed (tokens/s after the first token) of every sampler through
   llama_simplex.generate, and each one's ratio to plain top-k sampling,
   measured side by side (runs interleaved, medians reported).
2. sample_k(k) against k sequential generate calls, same sampler and length:
   wall time of each and the speed-up.

    python bench/bench_generate.py [--model PATH] [--tokens 64] [--repeats 3] [--k 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import llama_simplex as ls

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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    llm = ls.load_model(args.model, n_ctx=1024)
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
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"decode_tokens_per_s": med, "sample_k_s": tp, "sequential_s": ts,
                       "tokens": args.tokens, "k": args.k}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
