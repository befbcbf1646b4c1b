"""CPU kernels in plain C, built on first use with the system's C compiler and called through
ctypes (kernels/*.c). Today one: decode attention (kernels/decode_attention.c), which reads
each row's keys and values once and only up to the row's own length; the batched-matmul form it
replaces reads every row to the batch's longest and spends most of its time in per-matrix
overhead at these shapes (~2.8x slower at 512 rows, 4 heads of 32, docs/engine.md).

The library links libgomp, so once torch is imported it joins torch's OpenMP runtime (one
thread pool, `torch.get_num_threads()` threads). It is built into QUASAR_KERNEL_DIR (default
~/.cache/quasar-dist/kernels), named by a hash of its source and flags, atomically, so
concurrent processes (Ray workers) share one build. Without a compiler, or with
QUASAR_CPU_KERNELS=0, `available()` is False and attention uses torch ops.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

log = logging.getLogger(__name__)
SOURCE = Path(__file__).resolve().parent / "kernels" / "decode_attention.c"
_I64, _PTR = ctypes.c_int64, ctypes.c_void_p
_ERRORS = {1: "query group larger than 16", 2: "a row's length outside 1..capacity", 3: "out of memory"}


def enabled() -> bool:
    return os.environ.get("QUASAR_CPU_KERNELS", "1") != "0"


PORTABLE_FLAGS = ["-O3", "-fopenmp", "-shared", "-fPIC"]


def _flags() -> list[str]:
    """The portable build, plus AVX2/FMA where torch reports them (the kernel's SIMD paths)."""
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        return PORTABLE_FLAGS + ["-mavx2", "-mfma"]
    return list(PORTABLE_FLAGS)


def _kernel_dir() -> Path:
    return Path(os.environ.get("QUASAR_KERNEL_DIR", Path.home() / ".cache" / "quasar-dist" / "kernels"))


def build(source: Path = SOURCE, flags: list[str] | None = None) -> Path:
    """The shared library of `source`, compiled once per source and flags (default: this
    CPU's, `_flags`)."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler found (set CC)")
    flags = _flags() if flags is None else flags
    digest = hashlib.sha256(source.read_bytes() + " ".join(flags).encode()).hexdigest()[:16]
    target = _kernel_dir() / f"{source.stem}-{digest}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        done = subprocess.run([compiler, *flags, "-o", str(built), str(source), "-lm"], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{compiler} failed on {source.name}: {done.stderr.strip()[:500]}")
        os.replace(built, target)
    return target


def load(path: Path):
    """The kernel's entry point in the shared library at `path`, typed for ctypes."""
    fn = ctypes.CDLL(str(path)).decode_attention
    fn.restype = ctypes.c_int
    fn.argtypes = [_PTR] * 6 + [_I64] * 10 + [ctypes.c_float, ctypes.c_int]
    return fn


@functools.cache
def _library():
    if not enabled():
        return None
    try:
        return load(build())
    except (OSError, RuntimeError) as exc:
        log.warning("CPU decode-attention kernel unavailable, using torch ops: %s", exc)
        return None


def available() -> bool:
    """Whether the kernel was built and loaded here (`decode_attention` can run)."""
    return _library() is not None


def usable(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """The kernel's preconditions: CPU float32, one query per row, token stride = head_dim."""
    return (q.device.type == "cpu" and q.dtype == k.dtype == v.dtype == torch.float32 and q.shape[2] == 1
            and k.stride(-1) == 1 and v.stride(-1) == 1 and k.stride(-2) == k.shape[-1] and v.stride(-2) == v.shape[-1]
            and q.shape[1] // k.shape[1] <= 16 and available())


def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None,
                     lengths: torch.Tensor, scale: float, *, kernel=None) -> torch.Tensor:
    """q [B, H, 1, D]; k, v [B, Hkv, N, D] (token stride D); bias [B, N] additive or None;
    lengths [B] int64, each row's live entries (1..N, a prefix). Returns [B, H, 1, D].
    kernel: another build's entry point (`load`), e.g. the portable one in tests."""
    bsz, heads, _, dim = q.shape
    kv_heads, capacity = k.shape[1], k.shape[2]
    if not q.dtype == k.dtype == v.dtype == torch.float32 or q.shape[2] != 1:
        raise ValueError("decode_attention: float32 q, k, v with one query per row")
    q = q.contiguous()
    lengths = lengths.to(torch.int64).contiguous()  # the C code reads int64 and float32 through raw pointers
    if bias is not None:
        bias = bias.to(torch.float32)
        if bias.stride(-1) != 1:
            bias = bias.contiguous()
    out = torch.empty_like(q)
    rc = (kernel or _library())(q.data_ptr(), k.data_ptr(), v.data_ptr(), 0 if bias is None else bias.data_ptr(),
                    lengths.data_ptr(), out.data_ptr(), bsz, kv_heads, heads // kv_heads, dim, capacity,
                    k.stride(0), k.stride(1), v.stride(0), v.stride(1), 0 if bias is None else bias.stride(0),
                    scale, torch.get_num_threads())
    if rc:
        raise RuntimeError(f"decode_attention kernel: {_ERRORS.get(rc, rc)}")
    return out
