"""Two llama-server binaries side by side on one SMC request (Gemma 3 270M, the
default model): both servers up, the same seeded request to each in turn
(order alternating), one at a time; prints each time and the per-seed ratio
second / first. Used to measure a change to the server build, e.g. the smc
member taking the server's threads (its first binary built with the
llama_simplex_set_context_params call in cpp/server/register.cpp disabled):

  LLAMA_SIMPLEX_SERVER_BUILD=/tmp/before bash scripts/build_server.sh   # from the old tree
  python3 scripts/bench_server_pair.py /tmp/before/bin/llama-server build/llama-server/bin/llama-server 6
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
import urllib.request

from llama_simplex.models import default_model_path

PROMPT = "Q: A farmer has 17 sheep. All but 9 run away. How many are left?\nA:"


def post(port: int, body: dict) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/completion", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=600).read())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("first")
    ap.add_argument("second")
    ap.add_argument("reps", type=int, nargs="?", default=6)
    ap.add_argument("--particles", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", default="1,2", help="-t,-tb of both servers (default 1,2: llama_cpp.Llama's here)")
    args = ap.parse_args()
    t, tb = args.threads.split(",")
    bins = {"first": args.first, "second": args.second}
    ports = {"first": 18301, "second": 18302}
    procs = [subprocess.Popen([bins[k], "-m", str(default_model_path()), "--host", "127.0.0.1", "--port", str(ports[k]),
                               "-np", "1", "-c", "2048", "--no-webui", "-t", t, "-tb", tb],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for k in bins]
    times = {k: [] for k in bins}
    try:
        for _ in range(120):
            try:
                for k in bins:
                    urllib.request.urlopen(f"http://127.0.0.1:{ports[k]}/health", timeout=2)
                break
            except OSError:
                time.sleep(1)
        for rep in range(args.reps):
            for k in (("first", "second") if rep % 2 == 0 else ("second", "first")):
                body = {"prompt": PROMPT, "n_predict": args.tokens, "seed": rep, "samplers": ["smc"],
                        "sampler_params": {"smc": {"particles": args.particles, "max_tokens": args.tokens,
                                                   "n_ctx": 2048}}}
                t0 = time.perf_counter()
                r = post(ports[k], body)
                times[k].append(time.perf_counter() - t0)
                print(f"seed {rep} {k}: {times[k][-1]:.2f} s, {r['tokens_predicted']} tokens {r['content'][:30]!r}",
                      flush=True)
    finally:
        for p in procs:
            p.terminate()
    ratios = [b / a for a, b in zip(times["first"], times["second"])]
    print(f"median s: first {statistics.median(times['first']):.2f}, second {statistics.median(times['second']):.2f}; "
          f"second / first per seed: median {statistics.median(ratios):.2f}, range [{min(ratios):.2f}, {max(ratios):.2f}]")


if __name__ == "__main__":
    main()
