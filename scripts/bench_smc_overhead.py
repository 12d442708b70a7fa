"""Power-SMC's overhead beyond batched decoding, interleaved rounds in one process.

Each round runs, in turn: plain sampling (ls.generate with Softmax), SMC at
N = 4, 8, 16 (_core.smc_generate in a rollout context of SMC's own shape) and,
right after each SMC run, bare batched llama_decode of the same shape
(_core.raw_batched_decode_rows_seconds: prefill, then as many rows per step as
the SMC run decoded, one per distinct particle sequence; a build without it,
whose SMC decodes N rows per step: _core.raw_batched_decode_seconds, one shared
row, then the run's steps of N rows). Prints medians and min-max over rounds of:
seconds, SMC / plain, raw / SMC (throughput ratio), the rows SMC decoded, and the
tokens drawn (to compare builds' draws).

    python scripts/bench_smc_overhead.py --rounds 5 --out-tokens 16,64 [--json out.json]

Before/after two builds, alternating one round per process, then pooled:
scripts/bench_smc_overhead.py --pool before.*.json and --pool after.*.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import llama_simplex as ls
from llama_simplex import _core

PROMPT = b"Q: A farmer has 17 sheep. All but 9 run away. How many are left?\nA:"


def table(n_out: int, rec: dict, ns: list) -> None:
    med = {k: statistics.median(v) for k, v in rec.items()}
    print(f"\n## {n_out} tokens, alpha = 4, {len(rec['plain'])} interleaved rounds (median [min, max])\n")
    print("| arm | seconds | SMC / plain | raw batched decode / SMC | decoded rows |\n|---|---:|---:|---:|---:|")
    print(f"| plain | {med['plain']:.3f} [{min(rec['plain']):.3f}, {max(rec['plain']):.3f}] | | | |")
    for n in ns:
        sm, rw = rec[f"smc{n}"], rec[f"raw{n}"]
        lat = [x / p for x, p in zip(sm, rec["plain"])]
        thr = [r / x for r, x in zip(rw, sm)]
        print(f"| SMC N = {n} | {med[f'smc{n}']:.3f} [{min(sm):.3f}, {max(sm):.3f}] | "
              f"{statistics.median(lat):.2f} [{min(lat):.2f}, {max(lat):.2f}] | "
              f"{statistics.median(thr):.2f} [{min(thr):.2f}, {max(thr):.2f}] | "
              + (f"{med[f'rows{n}']:.0f} [{min(rec[f'rows{n}'])}, {max(rec[f'rows{n}'])}]" if f"rows{n}" in rec else "")
              + " |")
    for n in ns:
        print(f"| raw batched decode, SMC N = {n}'s rows | {med[f'raw{n}']:.3f} [{min(rec[f'raw{n}']):.3f}, "
              f"{max(rec[f'raw{n}']):.3f}] | | | |")


def raw_seconds(ctx, prompt, n: int, out: dict) -> float:
    """Bare batched llama_decode of the batch shapes the SMC run `out` decoded."""
    if hasattr(_core, "raw_batched_decode_rows_seconds"):  # one row per distinct sequence
        return _core.raw_batched_decode_rows_seconds(ctx, list(prompt), [k for rd in out["rounds"] for k in rd["rows"]])
    steps = max(0, len(max((t for rd in out["rounds"] for t in rd["tokens"]), key=len)) - 1)
    return _core.raw_batched_decode_seconds(ctx, list(prompt), n, steps)  # N rows per step after the first


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out-tokens", default="16,64")
    ap.add_argument("--particles", default="4,8,16")
    ap.add_argument("--first-round", type=int, default=0,
                    help="index of the first round (its seed; rounds alternate the order of N): for driving "
                         "one round per process, alternating builds")
    ap.add_argument("--json", default=None)
    ap.add_argument("--pool", nargs="+", default=None, help="print the tables of these JSON files pooled; no run")
    a = ap.parse_args()
    if a.pool:
        pooled = {}
        for path in a.pool:
            with open(path) as f:
                for n_out, r in json.load(f).items():
                    dst = pooled.setdefault(int(n_out), {"seconds": {}, "draws": {}})
                    for k, v in r["seconds"].items():
                        dst["seconds"].setdefault(k, []).extend(v)
        for n_out, r in sorted(pooled.items()):
            table(n_out, r["seconds"], sorted(int(k[3:]) for k in r["seconds"] if k.startswith("smc")))
        return
    llm = ls.load_model(None, n_ctx=1024)
    prompt = llm.tokenize(PROMPT)
    ls.generate(llm, prompt, ls.Softmax(), max_tokens=4, seed=0, add_special=False).wait()  # warm-up
    ns = [int(x) for x in a.particles.split(",")]
    results = {}
    for n_out in [int(x) for x in a.out_tokens.split(",")]:
        ctxs = {}
        for n in ns:
            s = ls.SMCPowerSampler(alpha=4.0, particles=n)
            ctxs[n] = (s, ls.handles.rollout_context(llm, *s.context_size(llm, len(prompt), n_out), 32))
        rec = ({"plain": []} | {f"smc{n}": [] for n in ns} | {f"raw{n}": [] for n in ns}
               | {f"rows{n}": [] for n in ns})
        draws = {n: [] for n in ns}
        for rnd in range(a.first_round, a.first_round + a.rounds):
            t0 = time.perf_counter()
            g = ls.generate(llm, prompt, ls.Softmax(), max_tokens=n_out, seed=rnd, add_special=False,
                            progress=False)
            g.wait()
            rec["plain"].append(time.perf_counter() - t0)
            order = ns if rnd % 2 == 0 else ns[::-1]
            for n in order:
                s, ctx = ctxs[n]
                t0 = time.perf_counter()
                out = _core.smc_generate(ctx, list(prompt), s.params(), n_out, rnd, True)
                rec[f"smc{n}"].append(time.perf_counter() - t0)
                draws[n].append(list(out["tokens"]))
                rec[f"rows{n}"].append(out["decoded_tokens"])
                rec[f"raw{n}"].append(raw_seconds(ctx, prompt, n, out))
        table(n_out, rec, ns)
        results[n_out] = {"seconds": rec, "draws": {str(n): d for n, d in draws.items()}}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f)


if __name__ == "__main__":
    main()
