"""Runs llama_simplex.bench.power (kept here so the documented commands work)."""
import sys

from llama_simplex.bench.power import main

if __name__ == "__main__":
    sys.exit(main())
