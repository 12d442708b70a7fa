"""The C API (llama_simplex.h) and its packaging: a C program built with
pkg-config and with find_package(llama_simplex), run on a tiny model."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import llama_simplex as ls

ROOT = Path(__file__).resolve().parents[1]
PKG = Path(ls.__file__).parent
EXAMPLE = ROOT / "examples" / "c"


def _check_output(out: str, prompt: str) -> None:
    assert "bad p: invalid argument: p: must be in [0, 1], got 1.5" in out
    assert "version 0.1.0" in out
    assert prompt in out


@pytest.mark.skipif(shutil.which("pkg-config") is None or shutil.which("cc") is None, reason="needs pkg-config and cc")
def test_c_example_with_pkg_config(tmp_path, tiny_model_path):
    env = dict(os.environ, PKG_CONFIG_PATH=str(PKG / "lib" / "pkgconfig"))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "llama_simplex"], env=env, capture_output=True,
                           text=True, check=True).stdout.split()
    exe = tmp_path / "simple"
    subprocess.run(["cc", "-std=c11", "-Wall", "-Werror", str(EXAMPLE / "simple.c"), "-o", str(exe), *flags],
                   check=True, capture_output=True, text=True)
    run = subprocess.run([str(exe), str(tiny_model_path), "abc", "8"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    _check_output(run.stdout, "abc")


@pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake")
def test_c_example_with_find_package(tmp_path, tiny_model_path):
    build = tmp_path / "build"
    subprocess.run(["cmake", "-S", str(EXAMPLE), "-B", str(build), f"-DCMAKE_PREFIX_PATH={PKG}"], check=True,
                   capture_output=True, text=True)
    subprocess.run(["cmake", "--build", str(build)], check=True, capture_output=True, text=True)
    run = subprocess.run([str(build / "simple"), str(tiny_model_path), "cab", "6"], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    _check_output(run.stdout, "cab")


class DrawParams(ctypes.Structure):
    _fields_ = [("draw", ctypes.c_bool), ("seed", ctypes.c_uint32)]


class TopKParams(ctypes.Structure):
    _fields_ = [("k", ctypes.c_int32), ("temperature", ctypes.c_float), ("draw", DrawParams)]


class BestOfKParams(ctypes.Structure):
    _fields_ = [("k_samples", ctypes.c_int32), ("beta", ctypes.c_float), ("lam", ctypes.c_float),
                ("steps", ctypes.c_int32), ("step_size", ctypes.c_float), ("m", ctypes.c_int32),
                ("temperature", ctypes.c_float), ("draw", DrawParams)]


@pytest.fixture(scope="module")
def lib():
    lib = ctypes.CDLL(str(PKG / "lib" / "libllama_simplex.so"))
    lib.llama_simplex_last_error.restype = ctypes.c_char_p
    lib.llama_simplex_version.restype = ctypes.c_char_p
    lib.llama_simplex_top_k_default_params.restype = TopKParams
    lib.llama_simplex_best_of_k_default_params.restype = BestOfKParams
    return lib


def test_version_and_defaults(lib):
    assert lib.llama_simplex_version() == b"0.1.0"
    d = lib.llama_simplex_top_k_default_params()
    assert (d.k, d.temperature, d.draw.draw) == (40, 1.0, False)
    b = lib.llama_simplex_best_of_k_default_params()
    assert (b.k_samples, b.steps, b.m) == (8, 5, 8) and abs(b.beta - 0.01) < 1e-7 and abs(b.lam - 0.1) < 1e-7


@pytest.mark.parametrize("field, value, words", [
    ("k", -1, b"k: must be >= 0"),
    ("temperature", -2.0, b"temperature: must be finite and >= 0"),
    ("temperature", float("nan"), b"temperature: must be finite"),
])
def test_bad_parameters_return_a_status_and_a_message(lib, field, value, words):
    p = lib.llama_simplex_top_k_default_params()
    setattr(p, field, value)
    out = ctypes.c_void_p(123)
    assert lib.llama_simplex_top_k(ctypes.byref(p), ctypes.byref(out)) == 1
    assert out.value is None
    assert words in lib.llama_simplex_last_error()


def test_null_pointers_and_a_good_sampler(lib):
    out = ctypes.c_void_p()
    assert lib.llama_simplex_top_k(None, ctypes.byref(out)) == 2
    b = lib.llama_simplex_best_of_k_default_params()
    b.step_size = 0.0
    assert lib.llama_simplex_best_of_k(ctypes.byref(b), ctypes.byref(out)) == 1
    assert b"step_size" in lib.llama_simplex_last_error()
    b = lib.llama_simplex_best_of_k_default_params()
    assert lib.llama_simplex_best_of_k(ctypes.byref(b), ctypes.byref(out)) == 0 and out.value
    assert lib.llama_simplex_last_error() == b""
    import llama_cpp
    smpl = ctypes.cast(out, llama_cpp.llama_sampler_p_ctypes)
    assert llama_cpp.llama_sampler_name(smpl) == b"simplex-best-of-k"
    llama_cpp.llama_sampler_free(smpl)
