"""What it costs when live generations on one Llama take turns.

    python examples/generation_switch.py [N_TOKENS]

1. Two generate() streams advanced in alternation (each switch saves one
   stream's KV cells and logits and restores the other's) against the same two
   run one after the other: CPU time, and whether the tokens are the same.
2. One stream with llama_cpp's own create_completion called halfway: the next
   step decodes the prompt and the tokens so far again (one decode call per
   token, as the first time): that step's wall time against an ordinary step.
Default model (Gemma 3 270M), n_ctx 2048, TopK(k=40).
"""

import sys
import time

import llama_simplex as ls

llm = ls.load_model(n_ctx=2048)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 64
sampler = ls.TopK(k=40)
prompts = ("Once upon a time", "The capital of France is")


def sequential():
    t = time.process_time()
    out = [ls.generate(llm, p, sampler, max_tokens=n, seed=i + 1).tokens for i, p in enumerate(prompts)]
    return time.process_time() - t, out


def interleaved():
    t = time.process_time()
    gens = [ls.generate(llm, p, sampler, max_tokens=n, seed=i + 1) for i, p in enumerate(prompts)]
    steps = [g._steps() for g in gens]
    for _ in range(n + 2):
        for s in steps:
            next(s, None)
    return time.process_time() - t, [g.tokens for g in gens]


sequential()  # warm-up
runs = [(sequential(), interleaved()) for _ in range(3)]  # alternate; keep the fastest of each
(t1, a), (t2, b) = min(r[0] for r in runs), min(r[1] for r in runs)
print(f"{n} tokens per stream: CPU time one after the other {t1:.2f} s, in alternation {t2:.2f} s "
      f"({t2 / t1:.2f}x); same tokens: {a == b}")

ordinary, after = [], []
for _ in range(3):
    gen = ls.generate(llm, prompts[0], sampler, max_tokens=n, seed=1)
    steps = gen._steps()
    for i in range(n):
        if i == n // 2:
            llm.create_completion(prompts[1], max_tokens=1, temperature=0.0)
        t = time.perf_counter()
        if next(steps, None) is None:
            break
        (after if i == n // 2 else ordinary).append(time.perf_counter() - t)
ordinary.sort()
print(f"after llama_cpp's own call: that step {min(after) * 1e3:.0f} ms (re-decodes the prompt and {n // 2} tokens), "
      f"an ordinary step {ordinary[len(ordinary) // 2] * 1e3:.1f} ms (median); same tokens: {gen.tokens == a[0]}")
