"""llama-simplex"""
import llama_cpp  # noqa: F401  (loads libllama first)
from . import _core
