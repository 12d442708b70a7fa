"""Build tiny, deterministic, random-weight Llama GGUF models for tests.

The models are meant for exercising samplers, not for producing sensible
text: a few thousand float32 parameters, a character-level SentencePiece
("llama") vocabulary of 8..64 tokens, and an output matrix scaled so that
next-token distributions are neither near-uniform nor near one-hot.

Vocabulary layout (ids are stable for a given ``n_vocab``)::

    0 <unk> (UNKNOWN)   1 <s> (CONTROL, BOS)   2 </s> (CONTROL, EOS)
    3.. single characters from ``ALPHABET``: "▁" (space), a-z, ".,!?'",
        0-9, A-Z -- truncated to ``n_vocab - 3`` entries.

No space prefix is added, so ``tokenize(b"ab")`` is ``[1, id('a'), id('b')]``.
Caveat: there are no ``<0xXX>`` byte-fallback tokens (they would not fit in
64 ids), and llama.cpp throws an uncaught C++ exception -- aborting the
process -- when asked to tokenize a character outside the vocabulary. Only
tokenize text made of ``tiny_vocab(n_vocab)`` characters.

Usage::

    python models/tiny_gguf.py out.gguf --n-vocab 16 --seed 0
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import pathlib
import string
import tempfile
from typing import Any

import numpy as np

try:
    import gguf
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("tiny_gguf needs the 'gguf' package (pip install gguf)") from exc

__all__ = ["ALPHABET", "MIN_VOCAB", "MAX_VOCAB", "DEFAULT_LOGIT_SCALE",
           "tiny_vocab", "build_tiny_model", "cached_tiny_model"]

MIN_VOCAB = 8
MAX_VOCAB = 64
N_SPECIAL = 3  # <unk>, <s>, </s>
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
# "▁" is SentencePiece's escaped space; llama.cpp maps " " <-> "▁" itself.
ALPHABET = "▁" + string.ascii_lowercase + ".,!?'" + string.digits + string.ascii_uppercase
# Standard deviation of the logits (the final hidden state is RMS-normalised
# to ~unit scale, so the logits' spread is set by this alone). 1.75 puts the
# mean next-token entropy at roughly 0.6-0.8 of log(n_vocab) for n_vocab 8..64.
DEFAULT_LOGIT_SCALE = 1.75
# Bump when the file layout or weight recipe changes, so caches are rebuilt.
FORMAT_VERSION = 1


def tiny_vocab(n_vocab: int) -> list[str]:
    """Return the token strings of a tiny model with ``n_vocab`` tokens."""
    _check_range("n_vocab", n_vocab, MIN_VOCAB, MAX_VOCAB)
    return ["<unk>", "<s>", "</s>", *ALPHABET[: n_vocab - N_SPECIAL]]


def _check_range(name: str, value: int, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < lo or (hi is not None and value > hi):
        allowed = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be in {allowed}, got {value}")


def add_llama_header(w: "gguf.GGUFWriter", *, n_ctx_train: int, n_embd: int, n_layer: int, n_ff: int, n_head: int,
                     n_head_kv: int, head_dim: int, rms_eps: float, file_type: "gguf.LlamaFileType",
                     tokens: list[str], scores: list[float], token_types: list[Any],
                     key_value_length: bool = False) -> None:
    """The llama-architecture keys and the SPM tokenizer of our generated models,
    in the order they are written (the bytes of a model depend on it):
    key_value_length adds the head dimension as key/value length, for shapes
    whose head_dim is not n_embd / n_head. Token ids: UNK_ID, BOS_ID, EOS_ID;
    BOS added, no space prefix (character-for-token tokenization)."""
    w.add_context_length(n_ctx_train)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    if key_value_length:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(rms_eps)
    w.add_vocab_size(len(tokens))
    w.add_file_type(file_type)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(token_types)
    w.add_unk_token_id(UNK_ID)
    w.add_bos_token_id(BOS_ID)
    w.add_eos_token_id(EOS_ID)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)


def build_tiny_model(
    path: str | os.PathLike[str],
    *,
    n_vocab: int = 16,
    seed: int = 0,
    n_layer: int = 1,
    n_embd: int = 32,
    n_head: int = 2,
    n_ff: int = 64,
    n_ctx_train: int = 512,
    logit_scale: float = DEFAULT_LOGIT_SCALE,
) -> pathlib.Path:
    """Write a random-weight Llama GGUF model to ``path`` and return the path.

    The same arguments always produce a byte-identical file: weights come
    from ``numpy.random.default_rng(seed)`` in a fixed order, and GGUF
    metadata contains no timestamps or paths.

    Raises ValueError if ``n_vocab`` is outside 8..64 or another size is
    inconsistent (e.g. ``n_embd`` not divisible by ``n_head``).
    """
    _check_range("n_vocab", n_vocab, MIN_VOCAB, MAX_VOCAB)
    _check_range("seed", seed, 0)
    for name, value in (("n_layer", n_layer), ("n_embd", n_embd), ("n_head", n_head),
                        ("n_ff", n_ff), ("n_ctx_train", n_ctx_train)):
        _check_range(name, value, 1)
    head_dim, rem = divmod(n_embd, n_head)
    if rem or head_dim % 2:  # RoPE rotates pairs of dimensions within a head
        raise ValueError(f"n_embd/n_head must be an even integer, got {n_embd}/{n_head}")
    if not np.isfinite(logit_scale) or logit_scale <= 0:
        raise ValueError(f"logit_scale must be a positive finite number, got {logit_scale}")

    path = pathlib.Path(path)
    rng = np.random.default_rng(seed)

    def normal(shape: tuple[int, int], std: float) -> np.ndarray:
        return (rng.standard_normal(shape) * std).astype(np.float32)

    # numpy shape is (rows=out_features, cols=in_features); gguf reverses it
    # into ggml's (ne0=in, ne1=out) as llama.cpp expects.
    tensors: list[tuple[str, np.ndarray]] = [("token_embd.weight", normal((n_vocab, n_embd), 1.0))]
    ones = np.ones(n_embd, dtype=np.float32)
    for i in range(n_layer):
        # 1/sqrt(fan_in) keeps activations O(1) so the residual stream, and
        # hence the context, actually influences the logits.
        tensors += [
            (f"blk.{i}.attn_norm.weight", ones),
            (f"blk.{i}.attn_q.weight", normal((n_embd, n_embd), n_embd ** -0.5)),
            (f"blk.{i}.attn_k.weight", normal((n_embd, n_embd), n_embd ** -0.5)),
            (f"blk.{i}.attn_v.weight", normal((n_embd, n_embd), n_embd ** -0.5)),
            (f"blk.{i}.attn_output.weight", normal((n_embd, n_embd), n_embd ** -0.5)),
            (f"blk.{i}.ffn_norm.weight", ones),
            (f"blk.{i}.ffn_gate.weight", normal((n_ff, n_embd), n_embd ** -0.5)),
            (f"blk.{i}.ffn_up.weight", normal((n_ff, n_embd), n_embd ** -0.5)),
            (f"blk.{i}.ffn_down.weight", normal((n_embd, n_ff), n_ff ** -0.5)),
        ]
    # The final RMS norm makes the hidden state ~unit per component, so
    # logits ~ N(0, logit_scale^2): logit_scale alone controls the entropy.
    tensors += [
        ("output_norm.weight", ones),
        ("output.weight", normal((n_vocab, n_embd), logit_scale * n_embd ** -0.5)),
    ]

    tokens = tiny_vocab(n_vocab)
    token_types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    token_types += [gguf.TokenType.NORMAL] * (n_vocab - N_SPECIAL)
    # SPM merge priority; irrelevant for single characters but must exist.
    scores = [0.0] * N_SPECIAL + [-float(i) for i in range(n_vocab - N_SPECIAL)]

    w = gguf.GGUFWriter(path, "llama")
    w.add_name(f"tiny-llama-v{n_vocab}-s{seed}")
    add_llama_header(w, n_ctx_train=n_ctx_train, n_embd=n_embd, n_layer=n_layer, n_ff=n_ff, n_head=n_head,
                     n_head_kv=n_head, head_dim=head_dim, rms_eps=1e-5, file_type=gguf.LlamaFileType.ALL_F32,
                     tokens=tokens, scores=scores, token_types=token_types)
    for name, data in tensors:
        w.add_tensor(name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _gguf_version() -> str:
    # Part of the cache key: a different writer could lay the file out differently.
    try:
        return importlib.metadata.version("gguf")
    except importlib.metadata.PackageNotFoundError:  # e.g. a source checkout of gguf-py
        return "unknown"


def _cache_dir() -> pathlib.Path:
    env = os.environ.get("LLAMA_SIMPLEX_CACHE")
    return pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "llama_simplex" / "tiny"


def cached_tiny_model(n_vocab: int = 16, seed: int = 0, **kw: Any) -> pathlib.Path:
    """Return a cached tiny model, building it on first use.

    The cache lives in ``$LLAMA_SIMPLEX_CACHE`` (default
    ``~/.cache/llama_simplex/tiny``) and is keyed by every build parameter,
    the format version and the gguf package version. Files are written to a
    temporary name and renamed with ``os.replace``, so concurrent test
    processes never see a partial file (at worst both build the same bytes).
    """
    params = {"n_vocab": n_vocab, "seed": seed, **kw}
    # Validate (and reject unknown keywords) before touching the cache.
    defaults = build_tiny_model.__kwdefaults__ or {}
    unknown = set(params) - set(defaults)
    if unknown:
        raise TypeError(f"unknown tiny model parameters: {sorted(unknown)}")
    full = {**defaults, **params, "format": FORMAT_VERSION, "gguf": _gguf_version()}
    key = hashlib.sha256(json.dumps(full, sort_keys=True).encode()).hexdigest()[:16]
    cache = _cache_dir()
    target = cache / f"tiny-v{n_vocab}-s{seed}-{key}.gguf"
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=target.stem + ".", suffix=".tmp")
    os.close(fd)
    try:
        build_tiny_model(tmp, **params)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the cache is meant to be shared
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Write a tiny random-weight Llama GGUF model.")
    p.add_argument("out", type=pathlib.Path, help="output .gguf path")
    p.add_argument("--n-vocab", type=int, default=16, help=f"{MIN_VOCAB}..{MAX_VOCAB}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-layer", type=int, default=1)
    p.add_argument("--n-embd", type=int, default=32)
    p.add_argument("--n-head", type=int, default=2)
    p.add_argument("--n-ff", type=int, default=64)
    p.add_argument("--n-ctx-train", type=int, default=512)
    p.add_argument("--logit-scale", type=float, default=DEFAULT_LOGIT_SCALE)
    a = p.parse_args(argv)
    try:
        out = build_tiny_model(a.out, n_vocab=a.n_vocab, seed=a.seed, n_layer=a.n_layer,
                               n_embd=a.n_embd, n_head=a.n_head, n_ff=a.n_ff,
                               n_ctx_train=a.n_ctx_train, logit_scale=a.logit_scale)
    except (ValueError, TypeError) as exc:
        p.error(str(exc))
    print(out)


if __name__ == "__main__":
    _main()
