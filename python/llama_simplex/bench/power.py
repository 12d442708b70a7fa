"""Power sampling on a real model (default: Gemma 3 270M), side by side in one run.

1. Rollouts on a forked KV cache against a naive implementation that
   re-decodes the prompt for every rollout (prompt of --prompt-tokens tokens,
   same K, M, H, same seed): seconds per generated token and the ratio.
2. How the cost per token grows with K·M, H and the prompt length.
3. Peak memory (VmHWM, in a fresh process each) of plain generation against
   power sampling at K = M = 8, H = 64.

    python bench/bench_power.py [--model PATH] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import llama_simplex as ls

TEXT = ("The lighthouse keeper climbed the spiral stairs every evening, counting the steps as his father had "
        "taught him, and watched the ships pass along the dark coast while the lamp turned above him. ")


def prompt_tokens(llm, n: int):
    ids = []
    while len(ids) < n:
        ids += llm.tokenize(TEXT.encode(), add_bos=not ids)
    return ids[:n]


def per_token(llm, prompt, sampler, tokens: int, naive: bool, seed: int = 0):
    run = sampler.run_reprefill if naive else sampler.run  # the baseline re-decodes the prefix per rollout
    r = run(llm, prompt, tokens, seed, False)
    return r.seconds / max(1, len(r.tokens)), r


def peak_rss_child(kind: str, model: str | None) -> int:
    code = f"""
import llama_simplex as ls, resource
llm = ls.load_model({model!r}, n_ctx=1024)
if {kind!r} == "plain":
    ls.generate(llm, "Once upon a time", ls.Softmax(), max_tokens=16, seed=0).wait()
else:
    ls.generate(llm, "Once upon a time", ls.PowerSampler(alpha=4.0, candidates=8, rollouts=8, horizon=64,
                low_temperature_last=False), max_tokens=1, seed=0)
print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--out-tokens", type=int, default=16, help="output length of the latency comparison")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    llm = ls.load_model(args.model, n_ctx=1024)
    results = {}

    prompt = prompt_tokens(llm, args.prompt_tokens)
    s = ls.PowerSampler(alpha=4.0, candidates=4, rollouts=4, horizon=8, low_temperature_last=False)
    fork_t, fork_r = per_token(llm, prompt, s, 2, naive=False)
    naive_t, naive_r = per_token(llm, prompt, s, 2, naive=True)
    results["fork_vs_naive"] = dict(prompt_tokens=len(prompt), K=4, M=4, H=8, fork_s_per_token=fork_t,
                                    naive_s_per_token=naive_t, speedup=naive_t / fork_t,
                                    same_tokens=fork_r.tokens == naive_r.tokens)
    print(f"## Forked KV cache against re-prefilling the prompt per rollout ({len(prompt)}-token prompt, "
          f"K = M = 4, H = 8, alpha = 4)\n")
    print("| rollouts | s per generated token |\n|---|---:|")
    print(f"| forked (ours) | {fork_t:.2f} |\n| naive re-prefill | {naive_t:.2f} |")
    print(f"\nspeed-up: {naive_t / fork_t:.1f}x (same tokens drawn: {fork_r.tokens == naive_r.tokens})\n")

    print("## Cost per generated token as K·M, H and the prompt grow (alpha = 4)\n")
    print("| K | M | H | prompt | s per token | rollout tokens per s |\n|---:|---:|---:|---:|---:|---:|")
    rows = []
    for k, m, h, n in [(2, 2, 8, 64), (4, 4, 8, 64), (8, 8, 8, 64), (4, 4, 4, 64), (4, 4, 16, 64),
                       (4, 4, 8, 256), (4, 4, 8, 512)]:
        sp = ls.PowerSampler(alpha=4.0, candidates=k, rollouts=m, horizon=h, low_temperature_last=False)
        t, r = per_token(llm, prompt_tokens(llm, n), sp, 2, naive=False)
        rows.append(dict(K=k, M=m, H=h, prompt=n, s_per_token=t, rollout_tokens_per_s=r.stats["rollout_tokens"] / r.seconds))
        print(f"| {k} | {m} | {h} | {n} | {t:.2f} | {rows[-1]['rollout_tokens_per_s']:.0f} |")
    results["scaling"] = rows

    n_out = args.out_tokens
    q_prompt = llm.tokenize(b"Q: A farmer has 17 sheep. All but 9 run away. How many are left?\nA:")
    rows = []
    for label, sampler in [("plain sampling (softmax, T = 1)", ls.Softmax()),
                           ("power, token level (cpu-small: K = M = 4, H = 16)", ls.PowerSampler.preset("cpu-small")),
                           ("power, block level (cpu-small: B = 8, L = 8, K = M = 4, H = 16)",
                            ls.BlockPowerSampler.preset("cpu-small")),
                           ("MCMC power sampling (16 stages, 10 steps)", ls.MCMCPowerSampler(alpha=4.0))]:
        t0 = time.perf_counter()
        g = ls.generate(llm, q_prompt, sampler, max_tokens=n_out, seed=0, add_special=False, progress=False)
        g.wait()
        dt = time.perf_counter() - t0
        rows.append(dict(method=label, seconds=dt, tokens=len(g.tokens)))
    plain_t = rows[0]["seconds"]
    print(f"\n## Latency for {n_out} tokens at alpha = 4 (one prompt, seed 0)\n")
    print("| method | seconds | tokens | overhead over plain |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['method']} | {r['seconds']:.1f} | {r['tokens']} | {r['seconds'] / plain_t:.1f}x |")
    mcmc_t = rows[3]["seconds"]
    print(f"\nMCMC / token-level power latency: {mcmc_t / rows[1]['seconds']:.2f}x; "
          f"MCMC / block-level power latency: {mcmc_t / rows[2]['seconds']:.2f}x")
    results["latency"] = rows

    plain = peak_rss_child("plain", args.model)
    power = peak_rss_child("power", args.model)
    results["memory_kib"] = dict(plain=plain, power=power, ratio=power / plain)
    print(f"\n## Peak memory (VmHWM): plain generation {plain / 1024:.0f} MiB, power sampling "
          f"(K = M = 8, H = 64) {power / 1024:.0f} MiB: ratio {power / plain:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
