"""Command line: ``llama-simplex generate | compare | samplers``."""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

from . import _core
from .models import ModelNotFoundError
from .registry import SAMPLERS, python_name, sampler_from_name

DEFAULT_PROMPT = "The three most important ideas in probability theory are"
COMPARED = ("greedy", "softmax", "top-k", "top-p", "min-p", "sparsemax")


def _sampler_params() -> Dict[str, dataclasses.Field]:
    """Every parameter of every named sampler, once (they share meanings)."""
    params: Dict[str, dataclasses.Field] = {}
    for cls in SAMPLERS.values():
        for f in dataclasses.fields(cls):
            params.setdefault(f.name, f)
    return params


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", default=None,
                   help="GGUF path (default: $LLAMA_SIMPLEX_MODEL, else Gemma 3 270M from its PyPI package)")
    p.add_argument("--n-ctx", type=int, default=2048, help="context size (default 2048)")
    p.add_argument("--max-tokens", "-n", type=int, default=64, help="tokens to generate (default 64)")
    p.add_argument("--seed", "-s", type=int, default=0, help="seed of the final draw (default 0)")
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")


def _add_sampler_args(p: argparse.ArgumentParser) -> None:
    # every name and alias of the sampler table that Python runs by name, and every preset
    specs = [s for s in _core.sampler_specs() if any(n in SAMPLERS for n in (s["name"], *s["aliases"]))]
    names = sorted({n for s in specs for n in (s["name"], *s["aliases"])})
    presets = sorted({ps["name"] for s in specs for ps in s["presets"]})
    with_presets = ", ".join(s["name"] for s in specs if s["presets"])
    p.add_argument("--sampler", default="softmax", choices=names, help="decoder (default softmax)")
    p.add_argument("--preset", default=None, choices=presets,
                   help=f"a preset of {with_presets} (see `llama-simplex samplers`)")
    for name, f in _sampler_params().items():
        kind = type(f.default)
        flag = f"--{name.replace('_', '-')}"
        if kind is bool:
            p.add_argument(flag, dest=f"param_{name}", action=argparse.BooleanOptionalAction, default=None,
                           help=f"sampler parameter {name}")
        else:
            p.add_argument(flag, dest=f"param_{name}", type=kind, default=None,
                           help=f"sampler parameter {name} ({kind.__name__}); see `llama-simplex samplers`")
    p.add_argument("--quiet", action="store_true", help="no progress report (power sampling)")


def _sampler_from_args(args: argparse.Namespace):
    given = {k[len("param_"):]: v for k, v in vars(args).items() if k.startswith("param_") and v is not None}
    if args.preset is not None:
        owner = SAMPLERS[python_name(args.sampler)]
        if not getattr(owner, "PRESETS", None):
            names = [python_name(s["name"]) for s in _core.sampler_specs() if s["presets"]]
            raise ValueError(f"--preset applies to --sampler {', '.join(names[:-1])} or {names[-1]}, "
                             f"not {args.sampler!r}")
        return owner.preset(args.preset, **given)
    return sampler_from_name(args.sampler, **given)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llama-simplex", description="Simplex decoders as native llama.cpp samplers.")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="generate text with one sampler, streamed")
    gen.add_argument("prompt", nargs="?", default=DEFAULT_PROMPT)
    _add_sampler_args(gen)
    _add_model_args(gen)

    many = sub.add_parser("sample-k", help="k completions decoded together on a shared KV cache, with a majority vote")
    many.add_argument("prompt", nargs="?", default=DEFAULT_PROMPT)
    many.add_argument("-k", type=int, default=8, help="number of completions (default 8)")
    many.add_argument("--answer-regex", default=None,
                      help="regex extracting the answer to vote on (group 1 if any); default: the stripped text")
    _add_sampler_args(many)
    _add_model_args(many)

    cmp_ = sub.add_parser("compare", help="the same prompt and seed under several samplers, side by side")
    cmp_.add_argument("prompt", nargs="?", default=DEFAULT_PROMPT)
    cmp_.add_argument("--samplers", default=",".join(COMPARED), help=f"comma-separated (default {','.join(COMPARED)})")
    cmp_.add_argument("--temperature", type=float, default=0.8, help="temperature for every sampler that has one")
    _add_model_args(cmp_)

    smp = sub.add_parser("samplers", help="list the samplers with their parameters and defaults")
    smp.add_argument("--markdown", action="store_true",
                     help="print the Markdown tables the docs carry (scripts/gen_docs.py writes them)")

    bench = sub.add_parser("bench", help="every benchmark in one run: JSON, Markdown and PNG plots")
    bench.add_argument("--model", "-m", default=None, help="GGUF path for the end-to-end parts (default model otherwise)")
    bench.add_argument("--out", default="bench-results", help="output directory (default bench-results)")
    bench.add_argument("--parts", default="decoders,generation,power", help="comma-separated subset")
    bench.add_argument("--quick", action="store_true", help="fewer repetitions and sizes (a smoke run)")

    ev = sub.add_parser("eval", help="evaluations: exactness on a tiny model, quality across temperatures, "
                                      "right-answer tasks")
    ev.add_argument("what", choices=["exactness", "quality", "task"],
                    help="exactness: samplers against exact targets on a tiny model; quality: log-likelihood, "
                         "diversity and top-M coverage across temperatures on a real model; task: pass@1, pass@K and "
                         "majority vote per sampler on a task with right answers")
    ev.add_argument("--model", "-m", default=None,
                    help="exactness: GGUFs with a tiny vocabulary, comma-separated (python models/tiny_gguf.py); quality: any GGUF "
                         "(default model otherwise)")
    ev.add_argument("--prompts", default=None, help="quality: a file with one prompt per line")
    ev.add_argument("--task", default="capitals",
                    help="task: 'capitals' or a JSONL file of {prompt, answer[, checker]} (docs/eval/math500.md)")
    ev.add_argument("--limit", type=int, default=20, help="task: items (default 20)")
    ev.add_argument("--temperature", type=float, default=0.7, help="task: sampling temperature (default 0.7)")
    ev.add_argument("--samplers", default=None,
                    help="task: comma-separated subset of the sampler labels (default: all but 'power block paper', "
                         "which runs only when named)")
    ev.add_argument("--checker", default="first-line", choices=["first-line", "math"],
                    help="task: how answers are judged: first-line (default; the first line contains the answer) or "
                         "math (last \\boxed{}, else 'the answer is', else the last number; MATH normalisation); "
                         "a JSONL row's 'checker' field overrides it")
    ev.add_argument("--stop", action="append", default=[], help="task: stop string (repeatable)")
    ev.add_argument("--n-gpu-layers", type=int, default=-1,
                    help="task: layers offloaded to the GPU (default -1: all, when llama-cpp-python was built with "
                         "a GPU backend; no effect otherwise)")
    ev.add_argument("--temperatures", default="0.1,0.4,0.7,1.0", help="quality: comma-separated")
    ev.add_argument("-k", "--k", type=int, default=8, help="quality, task: completions per prompt (default 8)")
    ev.add_argument("--max-tokens", type=int, default=24, help="quality, task: tokens per completion (default 24)")
    ev.add_argument("--out", default="eval-results", help="output directory (resumes from its cache)")
    ev.add_argument("--alpha", type=float, default=4.0, help="exactness: the power (default 4)")
    ev.add_argument("--samples", type=int, default=1000, help="exactness: draws per sampler (default 1000)")

    srv = sub.add_parser("serve", help="an OpenAI-compatible endpoint whose requests choose our samplers")
    srv.add_argument("--model", "-m", default=None, help="GGUF path (default as for generate)")
    srv.add_argument("--n-ctx", type=int, default=2048)
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8000)
    limits = _server_limits()
    for field, kind, what in (
        ("max_body_bytes", int, "largest request body; larger gets HTTP 413"),
        ("read_timeout", float, "seconds a client has to send its request, and for each write of a response; "
                                "a body not sent in time gets HTTP 408"),
        ("max_steps", int, "most mirror-ascent steps per token of objective and bok"),
        ("max_horizon", int, "longest power rollout"),
        ("max_rollout_cells", int, "most power rollout-context cells, candidates*rollouts*(horizon+1)"),
        ("max_rollout_tokens", int, "most power rollout tokens per request, max_tokens*candidates*rollouts*horizon"),
        ("max_connections", int, "connections served at once (a thread each); one more gets HTTP 503"),
    ):
        default = getattr(limits, field)
        srv.add_argument("--" + field.replace("_", "-"), type=kind, default=default, help=f"{what} (default {default})")
    srv.add_argument("--reuse-prefix", action="store_true",
                     help="let seeded requests reuse the previous prompt's KV prefix: faster, but an answer may "
                          "then depend on earlier requests (default: a seeded request decodes its prompt afresh)")
    return parser


def _server_limits(args: Optional[argparse.Namespace] = None):
    """The server's Limits: the defaults, or those given on the command line."""
    from .server import Limits
    if args is None:
        return Limits()
    return Limits(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Limits)})


def _load(args: argparse.Namespace):
    from .handles import load_model
    return load_model(args.model, n_ctx=args.n_ctx)


def _cmd_generate(args: argparse.Namespace) -> int:
    from .generation import generate
    sampler = _sampler_from_args(args)
    llm = _load(args)
    gen = generate(llm, args.prompt, sampler, max_tokens=args.max_tokens, seed=args.seed, stop=args.stop,
                   progress=not args.quiet)
    sys.stdout.write(args.prompt)
    for piece in gen:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    print(f"[{sampler!r}, seed {gen.seed}, {len(gen.tokens)} tokens, finish: {gen.finish_reason}]", file=sys.stderr)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from .generation import generate
    names = [n.strip() for n in args.samplers.split(",") if n.strip()]
    samplers = []
    for name in names:
        cls = SAMPLERS.get(name)
        takes_t = cls is not None and any(f.name == "temperature" for f in dataclasses.fields(cls))
        samplers.append(sampler_from_name(name, **({"temperature": args.temperature} if takes_t else {})))
    llm = _load(args)
    print(f"prompt: {args.prompt!r}  (seed {args.seed}, {args.max_tokens} tokens)\n")
    for sampler in samplers:
        t0 = time.perf_counter()
        gen = generate(llm, args.prompt, sampler, max_tokens=args.max_tokens, seed=args.seed, stop=args.stop,
                   progress=False)
        text = gen.text
        dt = time.perf_counter() - t0
        rate = len(gen.tokens) / dt if dt > 0 else float("nan")
        print(f"== {sampler!r}  [{len(gen.tokens)} tokens, {rate:.1f} tok/s, {gen.finish_reason}]")
        print(text.strip() + "\n")
    return 0


def _cmd_sample_k(args: argparse.Namespace) -> int:
    from .multi_sample import sample_k
    sampler = _sampler_from_args(args)
    extract = _extractor(args.answer_regex)
    llm = _load(args)
    t0 = time.perf_counter()
    samples = sample_k(llm, args.prompt, args.k, sampler, max_tokens=args.max_tokens, seed=args.seed, stop=args.stop)
    dt = time.perf_counter() - t0
    n_tokens = sum(len(t) for t in samples.tokens)
    for i, (text, ll, fin) in enumerate(zip(samples.texts, samples.logliks, samples.finish_reasons)):
        print(f"== {i}  [log-likelihood {ll:.2f}, {len(samples.tokens[i])} tokens, {fin}]  answer: {extract(text)!r}")
        print(text.strip() + "\n")
    print(f"majority vote: {samples.majority_vote(extract)!r}")
    print(f"[{sampler!r}, seed {samples.seed}, {n_tokens} tokens in {dt:.2f} s, {n_tokens / dt:.1f} tok/s]",
          file=sys.stderr)
    return 0


def _extractor(pattern: Optional[str]):
    if pattern is None:
        return str.strip
    try:
        regex = re.compile(pattern)
    except re.error as e:
        raise ValueError(f"answer-regex: {e}") from None

    def extract(text: str):
        m = regex.search(text)
        if m is None:
            return None
        return (m.group(1) if regex.groups else m.group(0)).strip()
    return extract


def _cmd_bench(args: argparse.Namespace) -> int:
    from pathlib import Path
    from .bench.suite import PARTS, run_suite
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        raise ValueError(f"parts: choose from {', '.join(PARTS)}; got {args.parts!r}")
    report = run_suite(Path(args.out), args.model, parts, args.quick)
    print(report.read_text())
    print(f"[written to {report.parent}/]", file=sys.stderr)
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path
    if args.what == "task":
        from .eval.task import run as run_task
        if args.limit < 1 or args.k < 1:
            raise ValueError(f"limit, k: must be >= 1, got {args.limit}, {args.k}")
        which = [w.strip() for w in args.samplers.split(",")] if args.samplers else None
        report = run_task(args.task, args.model, Path(args.out), k=args.k, limit=args.limit,
                          max_tokens=args.max_tokens, temperature=args.temperature, which=which,
                          checker=args.checker, stop=args.stop, n_gpu_layers=args.n_gpu_layers)
        print(report.read_text())
        return 0
    if args.what == "quality":
        from .eval.quality import run as run_quality
        try:
            temps = [float(t) for t in args.temperatures.split(",") if t.strip()]
        except ValueError:
            raise ValueError(f"temperatures: comma-separated numbers, got {args.temperatures!r}") from None
        if not temps or min(temps) <= 0:
            raise ValueError(f"temperatures: values must be > 0, got {args.temperatures!r}")
        prompts = None
        if args.prompts:
            prompts = [l.rstrip("\n") for l in Path(args.prompts).read_text().splitlines() if l.strip()]
        report = run_quality(args.model, Path(args.out), temperatures=temps, k=args.k, max_tokens=args.max_tokens,
                             prompts=prompts)
        print(report.read_text())
        return 0
    if args.model is None:
        raise ValueError("model: exactness needs a GGUF with a tiny vocabulary (python models/tiny_gguf.py)")
    from .eval.exactness import run
    if args.samples < 10:
        raise ValueError(f"samples: must be >= 10, got {args.samples}")
    if not args.alpha > 0:
        raise ValueError(f"alpha: must be > 0, got {args.alpha}")
    report = run([m for m in args.model.split(",") if m.strip()], Path(args.out), alpha=args.alpha,
                 samples=args.samples)
    print(report.read_text())
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from .server import serve
    limits = _server_limits(args)  # checked before the model loads
    serve(_load(args), args.host, args.port, limits=limits, reuse_prefix=args.reuse_prefix)
    return 0


def _cmd_samplers(args: argparse.Namespace) -> int:
    """Lists the sampler table (``_core.sampler_specs()``): what every surface takes."""
    if args.markdown:
        from .docgen import markdown_reference
        print(markdown_reference(), end="")
        return 0
    for spec in _core.sampler_specs():
        aliases = f" (also: {', '.join(spec['aliases'])})" if spec["aliases"] else ""
        server = f"; llama-server: {spec['server_name']}" if spec["server_name"] else ""
        print(f"{spec['name']}{aliases}{server}\n    {spec['doc']}")
        for p in spec["params"]:
            where = "" if {"c", "server", "python"} <= set(p["surfaces"]) else f" [{', '.join(p['surfaces'])} only]"
            note = f" ({p['note']})" if p["note"] else ""
            allowed = "one of " + ", ".join(map(repr, p["choices"])) if p["type"] == "choice" else p["range"]
            print(f"    {p['name']}={p['default']!r}  {p['type']} {allowed}{note}: {p['doc']}{where}")
        for preset in spec["presets"]:
            values = ", ".join(f"{k}={v!r}" for k, v in preset["values"].items())
            print(f"    preset {preset['name']}: {values} ({preset['doc']})")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        commands = {"generate": _cmd_generate, "compare": _cmd_compare, "samplers": _cmd_samplers,
                    "sample-k": _cmd_sample_k, "serve": _cmd_serve, "bench": _cmd_bench, "eval": _cmd_eval}
        return commands[args.command](args)
    except (ValueError, TypeError, ModelNotFoundError) as e:
        print(f"llama-simplex: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
