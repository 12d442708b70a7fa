#!/usr/bin/env python3
"""MATH-500 (or any MATH-style file) -> a task file for `llama-simplex eval task`.

Reads the file you downloaded yourself — JSONL rows (or one JSON array of rows)
with at least "problem" and "answer", as in HuggingFaceH4/MATH-500's
``test.jsonl`` — and writes one {"prompt", "answer", "checker": "math"} line
per problem, with "id", "subject" and "level" carried over when present
("unique_id" becomes "id"). Nothing is downloaded. Standard library only.

The prompt is plain text, no chat template (docs/eval/math500.md says why)::

    Problem:
    <problem>

    Please reason step by step, and put your final answer within \\boxed{}.

    Solution:

Usage::

    python scripts/math500_to_jsonl.py test.jsonl math500.jsonl [--limit N] [--template T]

--template replaces the prompt; it must contain the literal ``{problem}``
(substituted as is, so other braces such as ``\\boxed{}`` need no escaping).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterator, List, Optional

TEMPLATE = ("Problem:\n{problem}\n\n"
            "Please reason step by step, and put your final answer within \\boxed{}.\n\n"
            "Solution:")
KEPT = (("unique_id", "id"), ("id", "id"), ("subject", "subject"), ("type", "subject"), ("level", "level"))


def read_rows(path: Path) -> Iterator[dict]:
    """The rows of a JSONL file, or of a file holding one JSON array of rows."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        yield from json.loads(text)
        return
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not JSON ({e.msg})") from None


def convert(rows: Iterator[dict], template: str = TEMPLATE, limit: Optional[int] = None) -> List[dict]:
    """Task rows for `llama-simplex eval task` from MATH-style rows: the prompt
    is `template` with ``{problem}`` replaced; the gold answer is kept as is."""
    if "{problem}" not in template:
        raise ValueError("template: must contain {problem}")
    out = []
    for n, row in enumerate(rows, 1):
        if limit is not None and len(out) >= limit:
            break
        problem, answer = row.get("problem"), row.get("answer")
        if not isinstance(problem, str) or not isinstance(answer, (str, int, float)):
            raise ValueError(f"row {n}: needs a string 'problem' and an 'answer' (a MATH file without 'answer' "
                             "fields, such as the original MATH release, needs its answers extracted first)")
        item = {"prompt": template.replace("{problem}", problem), "answer": str(answer), "checker": "math"}
        for src, dst in KEPT:
            if src in row and dst not in item:
                item[dst] = row[src]
        out.append(item)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    """Command line: input file, output file, --limit, --template."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="MATH-500 test.jsonl (or another MATH-style JSONL/JSON file)")
    parser.add_argument("output", type=Path, help="task file to write (JSONL)")
    parser.add_argument("--limit", type=int, default=None, help="first N problems only")
    parser.add_argument("--template", default=TEMPLATE, help="prompt with {problem} (default: see the docstring)")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be >= 1")
    try:
        items = convert(read_rows(args.source), args.template, args.limit)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.output.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items), encoding="utf-8")
    print(f"{len(items)} problems -> {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
