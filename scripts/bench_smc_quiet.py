"""Power-SMC against plain sampling, adjacent in one process: first the cost of one
llama_decode by its number of output rows (the default model, in a context with the
load_model context's settings and threads, as SMC's), then for each round (seed = round)
plain sampling, SMC (alpha = 4, 64 tokens) and plain sampling again for each N; the ratio is SMC over the mean of the two plain runs.
Meant for a machine with nothing else running (it prints the load average).

Usage: python3 scripts/bench_smc_quiet.py OUT.json [ROUNDS=3] [N,N,...=4,8,16]"""
import json, os, statistics, sys, time
import llama_simplex as ls
from llama_simplex import _core
from llama_simplex.handles import context_params_address, model_address, rollout_context
llm = ls.load_model(None, n_ctx=1024)
q = llm.tokenize(b"Q: A farmer has 17 sheep. All but 9 run away. How many are left?\nA:")
NS = tuple(int(x) for x in (sys.argv[3] if len(sys.argv) > 3 else "4,8,16").split(","))
res = {"load_start": os.getloadavg()}
c = _core.RolloutContext(model_address(llm), 1024, 8, 0, 64, 32, context_params_address(llm))  # llm's threads, as SMC's
base = min(_core.raw_batched_decode_rows_seconds(c, q, [1] * 4) for _ in range(2))
rows = {}
for r in (1, 2, 3, 4, 6, 8):
    s = min(_core.raw_batched_decode_rows_seconds(c, q, [1] * 4 + [r] * 32) for _ in range(2))
    rows[r] = (s - base) / 32 * 1000
print("ms per llama_decode by output rows:", {k: round(v, 1) for k, v in rows.items()}, flush=True)
res["decode_ms_by_rows"] = rows
del c
ls.generate(llm, q, ls.Softmax(), max_tokens=4, seed=0, add_special=False).wait()
def run(s, seed):
    t0 = time.perf_counter()
    g = ls.generate(llm, q, s, max_tokens=64, seed=seed, add_special=False, progress=False); g.wait()
    return time.perf_counter() - t0, g
rounds = []
for rnd in range(int(sys.argv[2]) if len(sys.argv) > 2 else 3):
    row = {}
    for n in NS:
        p1, _ = run(ls.Softmax(), rnd)
        t, g = run(ls.SMCPowerSampler(alpha=4.0, particles=n), rnd)
        p2, _ = run(ls.Softmax(), rnd)
        row[n] = dict(smc=t, plain=(p1 + p2) / 2, ratio=t / ((p1 + p2) / 2), rows=g.stats["decoded_tokens"])
    rounds.append(row)
    print(rnd, {n: (round(v["smc"], 2), round(v["plain"], 2), round(v["ratio"], 2), v["rows"]) for n, v in row.items()}, flush=True)
res["rounds"] = rounds; res["load_end"] = os.getloadavg()
for n in NS:
    rs = [r[n]["ratio"] for r in rounds]
    print(f"N={n}: SMC/plain median {statistics.median(rs):.2f} [{min(rs):.2f}, {max(rs):.2f}]")
print("load", res["load_start"], res["load_end"])
json.dump(res, open(sys.argv[1], "w"), indent=1)
