"""Runs llama_simplex.bench.generation (kept here so the documented commands work)."""
import sys

from llama_simplex.bench.generation import main

if __name__ == "__main__":
    sys.exit(main())
