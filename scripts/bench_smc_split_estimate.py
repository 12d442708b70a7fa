"""What decoding Power-SMC's steps one row per llama_decode would cost, on real row traces:
for seeds 0-3 (N = 8, alpha = 4, 64 tokens, the default model) the bare decode of the rows
each step decoded, batched per step as SMC does, against the same number of rows decoded one
per llama_decode, and 64 single rows (plain sampling's decodes).

Usage: python3 scripts/bench_smc_split_estimate.py"""
import statistics, llama_simplex as ls
from llama_simplex import _core
from llama_simplex.handles import context_params_address, model_address
llm = ls.load_model(None, n_ctx=1024)
q = llm.tokenize(b"Q: A farmer has 17 sheep. All but 9 run away. How many are left?\nA:")
c = _core.RolloutContext(model_address(llm), 2048, 8, 0, 64, 32, context_params_address(llm))  # llm's threads, as SMC's
for seed in range(4):
    r = ls.smc_particles(llm, q, ls.SMCPowerSampler(alpha=4.0, particles=8), max_tokens=64, seed=seed, add_special=False)
    rows = [x for rd in r.rows for x in rd]
    batched = min(_core.raw_batched_decode_rows_seconds(c, q, rows) for _ in range(2))
    single = min(_core.raw_batched_decode_rows_seconds(c, q, [1] * sum(rows)) for _ in range(2))
    plain = min(_core.raw_batched_decode_rows_seconds(c, q, [1] * 64) for _ in range(2))
    print(f"seed {seed}: rows {sum(rows)} in {len(rows)} steps; batched {batched:.2f} s, one row per decode {single:.2f} s, 64 single rows (plain's decodes) {plain:.2f} s", flush=True)
