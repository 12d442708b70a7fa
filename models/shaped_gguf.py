"""Random-weight Llama-architecture GGUF models with a real model's shapes, for
benchmarks where the weights do not matter but the sizes do (scripts/gpu_check.sh
writes its models with this on a machine with no network and no model files).

Shapes (``SHAPES``): Gemma 3 270M's and Gemma 3 1B's -- vocabulary 262,144,
grouped-query attention with one KV head of 256 dimensions, tied input/output
embeddings -- in llama.cpp's ``llama`` architecture (no Gemma-specific norms or
sliding windows: the costs that matter for sampling, the vocabulary and the
matmuls, are Gemma's). Matrices are float16, norms float32; weights are
``numpy.random.default_rng(seed)`` normals with 1/sqrt(fan_in) scale, the
embedding scaled so that logits have standard deviation ``logit_scale``
(tiny_gguf.py's recipe).

The vocabulary is SentencePiece ("llama"): <unk>, <s>, </s>, the 256 byte
tokens <0x00>..<0xFF> (so any text tokenizes, by byte fallback), single
characters, then filler tokens "▁w<i>" up to ``n_vocab``.

    python models/shaped_gguf.py out.gguf --shape gemma3-270m [--seed 0]
"""
from __future__ import annotations

import argparse
import pathlib
import string
from typing import Dict, List

import numpy as np

import gguf

from tiny_gguf import ALPHABET, DEFAULT_LOGIT_SCALE, add_llama_header

__all__ = ["SHAPES", "shaped_vocab", "n_params", "build_shaped_model"]

# n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff (from the models' config.json)
SHAPES: Dict[str, Dict[str, int]] = {
    "gemma3-270m": dict(n_vocab=262144, n_embd=640, n_layer=18, n_head=4, n_head_kv=1, head_dim=256, n_ff=2048),
    "gemma3-1b": dict(n_vocab=262144, n_embd=1152, n_layer=26, n_head=4, n_head_kv=1, head_dim=256, n_ff=6912),
}
N_BYTES = 256
CHARS = ALPHABET + "".join(c for c in string.punctuation if c not in ALPHABET)


def shaped_vocab(n_vocab: int) -> List[str]:
    """The token strings: specials, byte tokens, single characters, fillers."""
    head = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(N_BYTES)] + list(CHARS)
    if n_vocab < len(head):
        raise ValueError(f"n_vocab must be >= {len(head)}, got {n_vocab}")
    return head + [f"▁w{i}" for i in range(n_vocab - len(head))]


def n_params(n_vocab: int, n_embd: int, n_layer: int, n_head: int, n_head_kv: int, head_dim: int, n_ff: int) -> int:
    """Parameters of the model build_shaped_model writes (tied embeddings)."""
    attn = n_embd * head_dim * (2 * n_head + 2 * n_head_kv)
    return n_vocab * n_embd + n_layer * (attn + 3 * n_embd * n_ff + 2 * n_embd) + n_embd


def build_shaped_model(path: str | pathlib.Path, *, n_vocab: int, n_embd: int, n_layer: int, n_head: int,
                       n_head_kv: int, head_dim: int, n_ff: int, n_ctx_train: int = 32768, seed: int = 0,
                       logit_scale: float = DEFAULT_LOGIT_SCALE, name: str = "shaped") -> pathlib.Path:
    """Write the model to ``path`` and return the path (same arguments, same bytes)."""
    for key, value in (("n_embd", n_embd), ("n_layer", n_layer), ("n_head", n_head), ("n_head_kv", n_head_kv),
                       ("head_dim", head_dim), ("n_ff", n_ff), ("n_ctx_train", n_ctx_train)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
    if n_head % n_head_kv or head_dim % 2:
        raise ValueError(f"n_head must be a multiple of n_head_kv and head_dim even, got {n_head}/{n_head_kv}, {head_dim}")
    tokens = shaped_vocab(n_vocab)
    path = pathlib.Path(path)
    rng = np.random.default_rng(seed)

    def normal(rows: int, cols: int, std: float) -> np.ndarray:
        # (out, in) in numpy; gguf reverses it into ggml's (ne0 = in, ne1 = out)
        return (rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(std)).astype(np.float16)

    ones = np.ones(n_embd, dtype=np.float32)
    q_dim, kv_dim = n_head * head_dim, n_head_kv * head_dim
    w = gguf.GGUFWriter(path, "llama")
    w.add_name(name)
    add_llama_header(w, n_ctx_train=n_ctx_train, n_embd=n_embd, n_layer=n_layer, n_ff=n_ff, n_head=n_head,
                     n_head_kv=n_head_kv, head_dim=head_dim, rms_eps=1e-6, file_type=gguf.LlamaFileType.MOSTLY_F16,
                     tokens=tokens,
                     scores=[0.0] * (3 + N_BYTES) + [-float(i) for i in range(n_vocab - 3 - N_BYTES)],
                     token_types=[gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
                     + [gguf.TokenType.BYTE] * N_BYTES + [gguf.TokenType.NORMAL] * (n_vocab - 3 - N_BYTES),
                     key_value_length=True)
    # Tied embeddings (no output.weight): llama.cpp uses token_embd for the
    # output matmul too, as Gemma does. Its scale sets the logits' spread.
    w.add_tensor("token_embd.weight", normal(n_vocab, n_embd, logit_scale * n_embd ** -0.5))
    for i in range(n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", ones)
        w.add_tensor(f"blk.{i}.attn_q.weight", normal(q_dim, n_embd, n_embd ** -0.5))
        w.add_tensor(f"blk.{i}.attn_k.weight", normal(kv_dim, n_embd, n_embd ** -0.5))
        w.add_tensor(f"blk.{i}.attn_v.weight", normal(kv_dim, n_embd, n_embd ** -0.5))
        w.add_tensor(f"blk.{i}.attn_output.weight", normal(n_embd, q_dim, q_dim ** -0.5))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", ones)
        w.add_tensor(f"blk.{i}.ffn_gate.weight", normal(n_ff, n_embd, n_embd ** -0.5))
        w.add_tensor(f"blk.{i}.ffn_up.weight", normal(n_ff, n_embd, n_embd ** -0.5))
        w.add_tensor(f"blk.{i}.ffn_down.weight", normal(n_embd, n_ff, n_ff ** -0.5))
    w.add_tensor("output_norm.weight", ones)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _main(argv: List[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Write a random-weight Llama GGUF model with a real model's shapes.")
    p.add_argument("out", type=pathlib.Path)
    p.add_argument("--shape", choices=sorted(SHAPES), required=True)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    shape = SHAPES[a.shape]
    out = build_shaped_model(a.out, seed=a.seed, name=f"random-{a.shape}-shape", **shape)
    print(f"{out}: {a.shape} shape, {n_params(**shape) / 1e6:.1f}M parameters, {out.stat().st_size / 2**20:.0f} MiB")


if __name__ == "__main__":
    _main()
