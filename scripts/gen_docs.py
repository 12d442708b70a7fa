#!/usr/bin/env python
"""Rewrites the generated sampler tables of README.md and docs/ from the
sampler table (cpp/src/specs.cpp, through the installed package's
``_core.sampler_specs()``; see python/llama_simplex/docgen.py).

    python scripts/gen_docs.py            # rewrite the stale blocks
    python scripts/gen_docs.py --check    # exit 1 and name the stale files, writing nothing

Install the package first (its table is what the docs are generated from).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llama_simplex import docgen

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report stale files (exit 1 if any)")
    args = ap.parse_args(argv)
    stale = docgen.update(ROOT, write=not args.check)
    for path in stale:
        print(f"{'stale' if args.check else 'rewrote'}: {path.relative_to(ROOT)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
