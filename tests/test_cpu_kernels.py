"""The C decode-attention kernel (model/cpu_kernels.py) against the torch path it replaces on
the CPU: same results to float32 rounding over cache-shaped (strided) views, with and without
an additive bias, for group sizes and head dims of the shipped and Qwen2-shaped models."""
from __future__ import annotations

import math

import pytest
import torch

from quasar_dist.model import cpu_kernels
from quasar_dist.model.attention import cached_attention

pytestmark = pytest.mark.skipif(not cpu_kernels.available(), reason="no C compiler here")
EPS = torch.finfo(torch.float32).eps


def cache_views(rows: int, kv_heads: int, dim: int, capacity: int, upto: int, seed: int):
    """k, v as the cache holds them: [rows, Hkv, capacity, D] read up to `upto` (row and head
    strides of the full buffer)."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(rows, kv_heads, capacity, dim, generator=g)
    v = torch.randn(rows, kv_heads, capacity, dim, generator=g)
    return k[:, :, :upto], v[:, :, :upto], g


def prefix_bias(lengths: torch.Tensor, upto: int) -> torch.Tensor:
    live = torch.arange(upto)[None, :] < lengths[:, None]
    return torch.zeros(lengths.shape[0], upto).masked_fill_(~live, float("-inf"))


@pytest.mark.parametrize("heads,kv_heads,dim", [(4, 2, 32), (8, 2, 64), (4, 4, 32), (6, 2, 20)])
def test_kernel_matches_the_batched_matmul_path(heads, kv_heads, dim):
    rows, upto = 37, 75
    k, v, g = cache_views(rows, kv_heads, dim, 128, upto, seed=heads * dim)
    q = 3.0 * torch.randn(rows, heads, 1, dim, generator=g)  # peaked softmaxes too
    lengths = torch.randint(1, upto + 1, (rows,), generator=g)
    lengths[0] = upto
    live = prefix_bias(lengths, upto)
    tol = dict(rtol=64 * EPS, atol=64 * EPS)
    want = cached_attention(q, k, v, None, live, guidance="off")
    got = cached_attention(q, k, v, None, live, guidance="off", lengths=lengths)
    torch.testing.assert_close(got, want, **tol)
    log_tau = torch.randn(rows, upto, generator=g).clamp(max=0.7) + live  # `bias`: log tau is the mask
    want = cached_attention(q, k, v, log_tau, live, guidance="bias")
    got = cached_attention(q, k, v, log_tau, live, guidance="bias", lengths=lengths)
    torch.testing.assert_close(got, want, **tol)


def test_kernel_reads_nothing_past_a_row_length():
    k, v, g = cache_views(3, 2, 32, 40, 40, seed=1)
    q = torch.randn(3, 4, 1, 32, generator=g)
    lengths = torch.tensor([1, 17, 40])
    before = cpu_kernels.decode_attention(q, k, v, None, lengths, 1 / math.sqrt(32))
    k[0, :, 1:] = float("nan")
    v[1, :, 17:] = float("nan")
    after = cpu_kernels.decode_attention(q, k, v, None, lengths, 1 / math.sqrt(32))
    assert torch.equal(before, after)
    torch.testing.assert_close(after[0].squeeze(1), v[0, :, 0].repeat_interleave(2, 0), rtol=0, atol=0)


def test_kernel_rejects_lengths_outside_the_view():
    k, v, g = cache_views(2, 2, 32, 8, 8, seed=2)
    q = torch.randn(2, 4, 1, 32, generator=g)
    with pytest.raises(RuntimeError, match="length outside"):
        cpu_kernels.decode_attention(q, k, v, None, torch.tensor([3, 9]), 1.0)
    with pytest.raises(RuntimeError, match="length outside"):
        cpu_kernels.decode_attention(q, k, v, None, torch.tensor([0, 2]), 1.0)


def test_a_failing_build_names_its_cause(tmp_path, monkeypatch):
    monkeypatch.setenv("QUASAR_KERNEL_DIR", str(tmp_path / "kernels"))
    broken = tmp_path / "broken.c"
    broken.write_text("int f( {\n")
    with pytest.raises(RuntimeError, match="failed on broken.c"):
        cpu_kernels.build(broken)
    assert cpu_kernels.build(cpu_kernels.SOURCE).parent == tmp_path / "kernels"


def test_portable_build_matches_the_matmul_path(tmp_path, monkeypatch):
    """The build a CPU without AVX2 gets (plain C of the same arithmetic), on every machine."""
    monkeypatch.setenv("QUASAR_KERNEL_DIR", str(tmp_path))
    portable = cpu_kernels.load(cpu_kernels.build(cpu_kernels.SOURCE, flags=cpu_kernels.PORTABLE_FLAGS))
    k, v, g = cache_views(29, 2, 32, 64, 50, seed=7)
    q = 3.0 * torch.randn(29, 4, 1, 32, generator=g)
    lengths = torch.randint(1, 51, (29,), generator=g)
    live = prefix_bias(lengths, 50)
    log_tau = torch.randn(29, 50, generator=g).clamp(max=0.7) + live
    tol = dict(rtol=64 * EPS, atol=64 * EPS)
    torch.testing.assert_close(cpu_kernels.decode_attention(q, k, v, None, lengths, 1 / math.sqrt(32), kernel=portable),
                               cached_attention(q, k, v, None, live, guidance="off"), **tol)
    torch.testing.assert_close(cpu_kernels.decode_attention(q, k, v, log_tau, lengths, 1 / math.sqrt(32), kernel=portable),
                               cached_attention(q, k, v, log_tau, live, guidance="bias"), **tol)
