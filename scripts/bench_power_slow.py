"""256-token latency of token-level power (cpu-small) and MCMC against plain sampling: the
same prompt, alpha and seeds as llama_simplex.bench.power.latency; plain is measured before
and after each slow method (same process, same load).

Usage: python3 scripts/bench_power_slow.py OUT.json token|mcmc [token|mcmc ...]"""
import json, os, sys, time
import llama_simplex as ls

llm = ls.load_model(None, n_ctx=1024)
q = llm.tokenize(b"Q: A farmer has 17 sheep. All but 9 run away. How many are left?\nA:")
ls.generate(llm, q, ls.Softmax(), max_tokens=4, seed=0, add_special=False).wait()
out = []
def run(label, s, n=256):
    t0 = time.perf_counter()
    g = ls.generate(llm, q, s, max_tokens=n, seed=0, add_special=False, progress=False)
    g.wait()
    dt = time.perf_counter() - t0
    row = dict(method=label, seconds=dt, tokens=len(g.tokens), load=os.getloadavg())
    out.append(row); print(json.dumps(row), flush=True)
    json.dump(out, open(sys.argv[1], "w"), indent=1)
which = sys.argv[2:]
for w in which:
    run("plain sampling (softmax, T = 1)", ls.Softmax())
    if w == "token":
        run("power, token level (cpu-small: K = M = 4, H = 16)", ls.PowerSampler.preset("cpu-small"))
    else:
        run("MCMC power sampling (16 stages, 10 steps)", ls.MCMCPowerSampler(alpha=4.0))
run("plain sampling (softmax, T = 1)", ls.Softmax())
