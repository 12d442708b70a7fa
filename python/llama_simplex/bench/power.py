"""Power sampling on a real model (default: Gemma 3 270M), side by side in one run.

1. Rollouts on a forked KV cache against a naive implementation that
   re-decodes the prompt for every rollout (prompt of --prompt-tokens tokens,
   same K, M, H, same seed): seconds per generated token and the ratio.
2. How the cost per token grows with K·M, H and the prompt length.
3. Latency at alpha = 4 of plain sampling, Power-SMC (N = 4, 8, 16), block
   and token-level power (cpu-small) and MCMC, for each --out-tokens length;
   SMC's decode throughput against bare batched llama_decode of the same
   batch shapes (the rows SMC decoded at each step), measured in the same run.
4. Peak memory (VmHWM, in a fresh process each) of plain generation against
   power sampling at K = M = 8, H = 64 and SMC at N = 8.
5. On a tiny enumerable model (--tiny-model, or one built with
   models/tiny_gguf.py when run from the repository): TV to the exact
   π ∝ p^α against the tokens each power sampler decodes per draw.

    python bench/bench_power.py [--model PATH] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import llama_simplex as ls
from llama_simplex import _core

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
    ls.generate(llm, "Once upon a time", ls.Softmax(), max_tokens=64, seed=0).wait()
elif {kind!r} == "smc":
    ls.generate(llm, "Once upon a time", ls.SMCPowerSampler(alpha=4.0, particles=8), max_tokens=64, seed=0,
                progress=False)
else:
    ls.generate(llm, "Once upon a time", ls.PowerSampler(alpha=4.0, candidates=8, rollouts=8, horizon=64,
                low_temperature_last=False), max_tokens=1, seed=0)
print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def _build_tiny():
    """tiny8-s2 (vocabulary 8, seed 2: the eval's model where low-temperature
    sampling is furthest from π) built with models/tiny_gguf.py, if found."""
    for root in (Path.cwd(), *Path.cwd().parents):
        script = root / "models" / "tiny_gguf.py"
        if script.exists():
            sys.path.insert(0, str(script.parent))
            from tiny_gguf import build_tiny_model
            return str(build_tiny_model(Path(tempfile.mkdtemp()) / "tiny8-s2.gguf", n_vocab=8, seed=2))
    return None


def latency(llm, q_prompt, n_out: int, max_slow_tokens: int):
    """Seconds for n_out tokens at alpha = 4 of plain sampling, Power-SMC (N = 4, 8, 16), block power
    and (up to max_slow_tokens) token-level power and MCMC, their ratios, and SMC's throughput."""
    methods = [("plain sampling (softmax, T = 1)", ls.Softmax())]
    methods += [(f"Power-SMC, N = {n} (no ramp, kappa = 0.5)", ls.SMCPowerSampler(alpha=4.0, particles=n))
                for n in (4, 8, 16)]
    methods += [("power, block level (cpu-small: B = 8, L = 8, K = M = 4, H = 16)",
                 ls.BlockPowerSampler.preset("cpu-small"))]
    if n_out <= max_slow_tokens:  # token-level power and MCMC grow fastest: capped
        methods += [("power, token level (cpu-small: K = M = 4, H = 16)", ls.PowerSampler.preset("cpu-small")),
                    ("MCMC power sampling (16 stages, 10 steps)", ls.MCMCPowerSampler(alpha=4.0))]
    rows = []
    for label, sampler in methods:
        t0 = time.perf_counter()
        g = ls.generate(llm, q_prompt, sampler, max_tokens=n_out, seed=0, add_special=False, progress=False)
        g.wait()
        dt = time.perf_counter() - t0
        row = dict(method=label, seconds=dt, tokens=len(g.tokens))
        if isinstance(sampler, ls.SMCPowerSampler):
            row["decoded_tokens"] = g.stats["decoded_tokens"]
            row["decode_seconds"] = g.stats["seconds"]
        rows.append(row)
    plain_t = rows[0]["seconds"]
    print(f"\n## Latency for {n_out} tokens at alpha = 4 (one prompt, seed 0)\n")
    print("| method | seconds | tokens | over plain |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['method']} | {r['seconds']:.1f} | {r['tokens']} | {r['seconds'] / plain_t:.1f}x |")
    by = {r["method"]: r["seconds"] for r in rows}
    smc8 = by["Power-SMC, N = 8 (no ramp, kappa = 0.5)"]
    ratios = {"SMC N=8 / plain": smc8 / plain_t,
              "SMC N=8 / block (cpu-small)": smc8 / by[methods[4][0]]}
    if len(rows) > 5:
        ratios["SMC N=8 / MCMC"] = smc8 / by["MCMC power sampling (16 stages, 10 steps)"]
        ratios["SMC N=8 / token level (cpu-small)"] = smc8 / by["power, token level (cpu-small: K = M = 4, H = 16)"]
    print("\n" + "; ".join(f"{k}: {v:.2f}x" for k, v in ratios.items()))
    through = throughput(llm, q_prompt, n_out)
    return dict(rows=rows, ratios=ratios, throughput=through)


def throughput(llm, prompt, n_out: int):
    """Power-SMC's decode throughput (N = 4, 8, 16; n_out tokens, prompt
    included) against bare batched llama_decode of the same batch shapes
    (prefill, then at each step as many rows as the SMC run decoded: one per
    distinct particle sequence) in the same context, interleaved, best of 3 each
    (a run of 1-7 s here moves by 10-20 % between repeats)."""
    rows = []
    for n in (4, 8, 16):
        s = ls.SMCPowerSampler(alpha=4.0, particles=n)
        ctx = ls.handles.rollout_context(llm, *s.context_size(llm, len(prompt), n_out), 32)
        smc, raw, decoded = [], [], 0
        for rep in range(3):
            t0 = time.perf_counter()
            out = _core.smc_generate(ctx, list(prompt), s.params(), n_out, rep, True)
            smc.append(time.perf_counter() - t0)
            shapes = [k for rd in out["rounds"] for k in rd["rows"]]  # one row per distinct particle sequence
            decoded = out["decoded_tokens"]
            raw.append(_core.raw_batched_decode_rows_seconds(ctx, list(prompt), shapes))
        rows.append(dict(particles=n, decoded_tokens=decoded, smc_seconds=min(smc), raw_seconds=min(raw),
                         ratio=min(raw) / min(smc)))
    print("\n| SMC particles | decoded rows | SMC seconds | bare batched llama_decode seconds (same rows) | throughput ratio |"
          "\n|---:|---:|---:|---:|---:|")
    for t in rows:
        print(f"| {t['particles']} | {t['decoded_tokens']} | {t['smc_seconds']:.2f} | {t['raw_seconds']:.2f} | "
              f"{t['ratio']:.2f} |")
    return rows


def fidelity(model: str, draws: int, alpha: float = 4.0, length: int = 3):
    """TV to the exact π ∝ p^α (3-token outputs) against the tokens each power
    sampler decodes per draw (its rollouts, proposals or particles; the
    output's own ≤ 3 tokens added for token-level power; for block power,
    whose sampled blocks its stats do not count, the bound L_tail x 3), at
    settings from cheap to expensive."""
    import llama_cpp
    from llama_simplex.eval import exact
    llm = llama_cpp.Llama(model_path=model, n_ctx=1024, verbose=False)
    space = exact.Completions(llm, [1, 3], length, llm.token_eos())
    pi = space.power(alpha)
    noise = exact.tv_noise_quantile(pi, draws)
    settings = ([("Power-SMC", f"N = {n}, ramp = 3", ls.SMCPowerSampler(alpha=alpha, particles=n, ramp=3))
                 for n in (4, 16, 64, 256)]
                + [("Power-SMC", f"N = {n}, no ramp", ls.SMCPowerSampler(alpha=alpha, particles=n)) for n in (4, 16, 64, 256)]
                + [("token-level power", f"K = 8, M = {m}", ls.PowerSampler(alpha=alpha, candidates=8, rollouts=m))
                   for m in (2, 8, 32)]
                + [("block power", f"L = {n} (outputs within one block)", ls.BlockPowerSampler.preset(
                    "cpu-small", samples=n, tail_samples=n)) for n in (4, 16, 64)]
                + [("MCMC", f"{s} steps per stage", ls.MCMCPowerSampler(alpha=alpha, steps=s)) for s in (2, 10, 50)])
    rows = []
    print(f"\n## TV to π against decoded tokens per draw ({Path(model).name}, alpha = {alpha:g}, {length}-token "
          f"outputs, {draws} draws each; noise q99 of an exact sampler {noise:.3f}; "
          f"low-temperature sampling at exact TV {exact.tv(space.low_temperature(alpha), pi):.3f})\n")
    print("| sampler | setting | decoded tokens per draw | TV to π |\n|---|---|---:|---:|")
    for family, setting, sampler in settings:
        law, stats = exact.empirical(llm, sampler, space, draws)
        decoded = stats.get("decoded_tokens", stats.get("rollout_tokens", 0.0) + length)
        if isinstance(sampler, ls.BlockPowerSampler):  # its sampled blocks: not in its stats, at most L_tail x length
            decoded = stats.get("rollout_tokens", 0.0) + sampler.tail_samples * length
        rows.append(dict(sampler=family, setting=setting, decoded_tokens=decoded, tv=exact.tv(law, pi)))
        print(f"| {family} | {setting} | {decoded:.1f} | {rows[-1]['tv']:.3f} |")
    llm.close()
    return dict(model=Path(model).name, alpha=alpha, length=length, draws=draws, noise=noise, rows=rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--out-tokens", default="16,64", help="output lengths of the latency comparison (comma-separated)")
    ap.add_argument("--max-slow-tokens", type=int, default=64,
                    help="token-level power and MCMC only up to this output length (default 64)")
    ap.add_argument("--tiny-model", default=None, help="GGUF with a tiny vocabulary for TV against decoded tokens")
    ap.add_argument("--fidelity-draws", type=int, default=1000, help="draws per point of TV against decoded tokens")
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

    q_prompt = llm.tokenize(b"Q: A farmer has 17 sheep. All but 9 run away. How many are left?\nA:")
    ls.generate(llm, q_prompt, ls.Softmax(), max_tokens=4, seed=0, add_special=False).wait()  # warm-up
    results["latency"] = {}
    for n_out in [int(x) for x in str(args.out_tokens).split(",")]:
        results["latency"][str(n_out)] = latency(llm, q_prompt, n_out, args.max_slow_tokens)

    plain = peak_rss_child("plain", args.model)
    power = peak_rss_child("power", args.model)
    smc = peak_rss_child("smc", args.model)
    results["memory_kib"] = dict(plain=plain, power=power, ratio=power / plain, smc=smc, smc_ratio=smc / plain)
    print(f"\n## Peak memory (VmHWM): plain generation (64 tokens) {plain / 1024:.0f} MiB, power sampling "
          f"(K = M = 8, H = 64) {power / 1024:.0f} MiB: ratio {power / plain:.2f}; Power-SMC (N = 8, 64 tokens) "
          f"{smc / 1024:.0f} MiB: ratio {smc / plain:.2f}")

    tiny = args.tiny_model or _build_tiny()
    if tiny is None:
        print("\n(no --tiny-model and models/tiny_gguf.py not found: TV against decoded tokens skipped)")
    else:
        results["fidelity"] = fidelity(tiny, args.fidelity_draws)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
