"""Runs llama_simplex.bench.decoders (kept here so the documented commands work)."""
import sys

from llama_simplex.bench.decoders import main

if __name__ == "__main__":
    sys.exit(main())
