"""Per-call time of each closed-form decoder (and Best-of-K) on saved logits,
for two builds of llama_simplex compared in one run.

    python bench/kernel_timing.py --logits a.npy b.npy --python /path/to/python_before --python /path/to/python_after

Each interpreter runs a worker (its own installed llama_simplex) that times
llama_sampler_apply on a restored candidate array (the restore is outside the
timed region; each decoder draws the token itself, as in generation) and
prints the median in microseconds per (case, logits file). The workers of
the two builds alternate for --rounds rounds; the report is the median over
rounds and the ratio after / before. Logits: float32 .npy vectors, for
example Gemma 3 270M's 262,144 logits after three prompts, written by

    python bench/kernel_timing.py --save-gemma-logits /tmp/gemma_logits

as /tmp/gemma_logits0.npy .. /tmp/gemma_logits2.npy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

CASES = {
    "softmax T=0.8": lambda c, ls: c.make_sampler("softmax", {"temperature": 0.8}),
    "top-k 40 T=0.8": lambda c, ls: c.make_sampler("top_k", {"k": 40, "temperature": 0.8}),
    "top-p 0.9 model": lambda c, ls: c.make_sampler("top_p", {"p": 0.9, "temperature": 1.0, "order": "model"}),
    "top-p 0.9 T=0.8 temp": lambda c, ls: c.make_sampler("top_p", {"p": 0.9, "temperature": 0.8, "order": "temperature"}),
    "min-p 0.05": lambda c, ls: c.make_sampler("min_p", {"p_min": 0.05, "temperature": 1.0}),
    "sparsemax T=1": lambda c, ls: c.make_sampler("sparsemax", {"temperature": 1.0}),
    "greedy": lambda c, ls: c.make_sampler("greedy", {}),
    "best-of-k paper-0.01": lambda c, ls: ls.BestOfK.preset("paper-0.01").native(),
}


def worker(paths: list[str], repeats: int, names: list[str]) -> None:
    import llama_cpp

    import llama_simplex as ls
    from llama_simplex import _core
    from llama_simplex.bench.decoders import Candidates, OursChain

    out = {}
    for path in paths:
        cands = Candidates(np.load(path).astype(np.float32))
        for name in names:
            make = CASES[name]
            native = make(_core, ls)
            native.enable_draw(1)
            chain = OursChain([native])
            times = []
            for i in range(repeats + 5):
                cands.restore()
                t0 = time.perf_counter_ns()
                llama_cpp.llama_sampler_apply(chain.ptr, cands.ref)
                t1 = time.perf_counter_ns()
                if chain.status() != 0:
                    raise SystemExit(f"{name}: status {chain.status()}")
                if i >= 5:
                    times.append(t1 - t0)
            out[f"{name} | {path}"] = float(np.median(times)) / 1e3
    print(json.dumps(out))


PROMPTS = (b"Once upon a time", b"The capital of France is", b"def fib(n):")


def save_gemma_logits(prefix: str) -> None:
    import llama_simplex as ls
    llm = ls.load_model(n_ctx=256, logits_all=True)
    for i, prompt in enumerate(PROMPTS):
        llm.reset()
        llm.eval(llm.tokenize(prompt))
        np.save(f"{prefix}{i}.npy", np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float32))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--save-gemma-logits", metavar="PREFIX")
    ap.add_argument("--logits", nargs="+")
    ap.add_argument("--python", action="append", help="interpreter of a build (give two)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--worker", action="store_true")
    a = ap.parse_args()
    if a.save_gemma_logits:
        save_gemma_logits(a.save_gemma_logits)
        return
    if not a.logits or not a.python:
        ap.error("--logits and --python are required")
    if a.worker:
        worker(a.logits, a.repeats, a.cases)
        return
    runs: dict[str, list[dict[str, float]]] = {p: [] for p in a.python}
    for _ in range(a.rounds):
        for py in a.python:
            res = subprocess.run([py, __file__, "--worker", "--logits", *a.logits, "--python", py,
                                  "--repeats", str(a.repeats), "--cases", *a.cases], capture_output=True, text=True, check=True)
            runs[py].append(json.loads(res.stdout.strip().splitlines()[-1]))
    keys = list(runs[a.python[0]][0])
    med = {py: {k: float(np.median([r[k] for r in rs])) for k in keys} for py, rs in runs.items()}
    first, last = a.python[0], a.python[-1]
    print(f"{'case | logits':<60} {'before us':>10} {'after us':>10} {'after/before':>12}")
    for k in keys:
        b, f = med[first][k], med[last][k]
        print(f"{k:<60} {b:>10.1f} {f:>10.1f} {f / b:>12.3f}")
    ratios = [med[last][k] / med[first][k] for k in keys]
    print(f"geometric mean ratio after/before: {float(np.exp(np.mean(np.log(ratios)))):.3f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
