"""The temperature-guided decoder: equivalence with transformers, causality, the literal
formulas, incremental decoding, and checkpoint errors."""
import json
import math

import pytest
import torch

from quasar_dist import load_model
from quasar_dist.model import ModelLoadError, save_pretrained
from quasar_dist.model.attention import guided_attention
from quasar_dist.model.cache_batch import CacheBatch
from quasar_dist.parallel.toy_model import randomise_ttm

from hf_reference import make_hf_checkpoint
from tolerance import model_bound, rounding_bound

ARCHS = ["llama", "qwen2", "mistral"]
MODES = ["off", "scale", "bias"]
CONTEXTS = ["last", "mean"]


@pytest.fixture(scope="module", params=ARCHS)
def hf_pair(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    ref = make_hf_checkpoint(request.param, folder)
    return request.param, folder, ref


def _ids(bsz=2, t=24, seed=1, vocab=97):
    return torch.randint(3, vocab, (bsz, t), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mode", MODES)
def test_matches_transformers(hf_pair, mode):
    """guidance=off equals transformers; fresh (identity) TTM in scale/bias changes nothing."""
    arch, folder, ref = hf_pair
    ids = _ids()
    with torch.no_grad():
        expected = ref(ids).logits
        ours_model = load_model(folder, guidance=mode)
        ours = ours_model(ids)
    diff = (ours - expected).abs().max().item()
    print(f"{arch} {mode}: max |logits - transformers| = {diff:.2e}")
    assert diff <= model_bound(ours_model, expected)


def test_rope_base_is_read_from_either_config_format(tmp_path):
    """transformers 5 writes `rope_parameters: {rope_theta}` where 4 wrote `rope_theta`; a base
    read wrong (10000 instead of 1e6) changes every logit (found by the Qwen2 throughput bench)."""
    ref = make_hf_checkpoint("qwen2", tmp_path, rope_theta=1e6)
    ids = _ids()
    with torch.no_grad():
        expected = ref(ids).logits
        ours = load_model(tmp_path, guidance="off")
        got = ours(ids)
    assert ours.config.rope_theta == 1e6
    assert (got - expected).abs().max() <= model_bound(ours, expected)
    config = json.loads((tmp_path / "config.json").read_text())
    config.pop("rope_parameters", None)
    config["rope_theta"] = 1e6  # the older format
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert load_model(tmp_path).config.rope_theta == 1e6
    config["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="RoPE type 'yarn' is not supported"):
        load_model(tmp_path)


def _trained_like_model(folder, mode, seed=3, context=None):
    """A model whose TTM is far from identity, so guidance really acts; `context` picks the
    ttm_context (the folder's own when None)."""
    if context is not None:
        config = json.loads((folder / "config.json").read_text())
        if config.get("quasar", {}).get("ttm_context") != context:
            variant = folder.parent / f"{folder.name}-{context}"
            if not variant.exists():
                _copy_folder(folder, variant)
                config.setdefault("quasar", {})["ttm_context"] = context
                (variant / "config.json").write_text(json.dumps(config))
            folder = variant
    model = load_model(folder, guidance=mode)
    assert context is None or model.config.ttm_context == context
    randomise_ttm(model, seed)
    return model


def _segments(t, bounds=(10, 16, 21)):
    seg = torch.zeros(t, dtype=torch.long)
    for b in bounds:
        seg[b:] += 1
    return seg


@pytest.mark.parametrize("mode", MODES)
def test_trained_ttm_changes_output_when_guided(hf_pair, mode):
    _, folder, _ = hf_pair
    ids = _ids(bsz=1)
    with torch.no_grad():
        plain = load_model(folder, guidance="off")(ids)
        guided = _trained_like_model(folder, mode)(ids)
    diff = (plain - guided).abs().max().item()
    bound = model_bound(load_model(folder), plain)
    assert (diff <= bound) if mode == "off" else (diff > 100 * bound)


def _causal_differences(model, use_segments: bool, cut: int = 13, t_total: int = 24):
    """Change every token after `cut`; return (max logit change at <= cut, max logit change after
    cut, max temperature change of keys <= cut under contexts of steps <= cut's) and the bounds
    rounding can explain for the first and the last."""
    ids = _ids(bsz=1, t=t_total)
    changed = ids.clone()
    changed[0, cut + 1 :] = torch.randint(3, 97, (t_total - cut - 1,), generator=torch.Generator().manual_seed(9))
    seg = _segments(t_total).unsqueeze(0) if use_segments else None
    with torch.no_grad():
        la, ta = model(ids, segment_ids=seg, return_temperatures=True)
        lb, tb = model(changed, segment_ids=seg, return_temperatures=True)
    seg_of_cut = int(seg[0, cut]) if use_segments else 0
    tau_a = torch.stack([a[:, : seg_of_cut + 1, : cut + 1].exp() for a in ta])
    tau_b = torch.stack([b[:, : seg_of_cut + 1, : cut + 1].exp() for b in tb])
    before = (la[:, : cut + 1] - lb[:, : cut + 1]).abs().max().item()
    after = (la[:, cut + 1 :] - lb[:, cut + 1 :]).abs().max().item()
    tau_diff = (tau_a - tau_b).abs().max().item()
    return (before, after, tau_diff), (model_bound(model, la), model_bound(model, tau_a))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("use_segments", [False, True])
@pytest.mark.parametrize("context", CONTEXTS)
def test_causal(hf_pair, mode, use_segments, context):
    """Changing tokens after t never changes logits or temperatures at positions <= t, beyond
    rounding. Run in float32 and float64: rounding shrinks with eps (by ~1e9), a leak would not."""
    _, folder, _ = hf_pair
    found, tau_bounds = {}, {}
    for dtype in (torch.float32, torch.float64):
        model = _trained_like_model(folder, mode, context=context).to(dtype)
        (before, after, tau_diff), (logit_bound, tau_bound) = _causal_differences(model, use_segments)
        print(f"{dtype}: logits {before:.1e} (bound {logit_bound:.1e}), temperatures {tau_diff:.1e} (bound {tau_bound:.1e})")
        assert before <= logit_bound and tau_diff <= tau_bound
        assert after > 100 * logit_bound  # the change is visible later
        found[dtype], tau_bounds[dtype] = max(before, tau_diff), tau_bound
    # float64's difference is float32's bound scaled by the ratio of the eps (~1e-9), not a leak's size
    assert found[torch.float64] <= 1e-6 * tau_bounds[torch.float32]


def _leak_future_into_temperatures(model, strength: float) -> None:
    """Plant a causality leak: every token's cached projection A h gets `strength` times the mean
    over the whole sequence, later tokens included (what a context pooled over all tokens does)."""
    for layer in model.model.layers:
        project = layer.ttm.project
        layer.ttm.project = lambda h, project=project: (lambda ah: ah + strength * ah.mean(1, keepdim=True))(project(h))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_causality_check_catches_a_planted_leak(hf_pair, dtype):
    _, folder, _ = hf_pair
    model = _trained_like_model(folder, "bias").to(dtype)
    _leak_future_into_temperatures(model, strength=1e-2)
    (before, _, tau_diff), (logit_bound, tau_bound) = _causal_differences(model, use_segments=True)
    assert tau_diff > 10 * tau_bound and before > 10 * logit_bound


def _naive_attention(q, k, v, tau_q, mode):
    """Materialise the attention matrix and apply the formula literally (per query row)."""
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    t = q.shape[2]
    logits = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    out = torch.zeros_like(q)
    for i in range(t):
        row = logits[:, :, i, : i + 1]
        tau = tau_q[:, None, i, : i + 1]
        row = row * tau if mode == "scale" else row + torch.log(tau)
        w = torch.softmax(row, dim=-1)
        out[:, :, i] = (w.unsqueeze(-1) * v[:, :, : i + 1]).sum(-2)
    return out


@pytest.mark.parametrize("mode", ["scale", "bias"])
@pytest.mark.parametrize("per_query", [False, True])
def test_guided_attention_equals_literal_formula(mode, per_query):
    g = torch.Generator().manual_seed(0)
    b, h, hkv, t, d = 2, 4, 2, 9, 8
    q, k, v = (torch.randn(b, n, t, d, generator=g) for n in (h, hkv, hkv))
    tau_key = torch.rand(b, t, generator=g) * 1.9 + 0.05
    tau_q = torch.rand(b, t, t, generator=g) * 1.9 + 0.05 if per_query else tau_key[:, None].expand(b, t, t)
    mask = torch.ones(t, t, dtype=torch.bool).tril().unsqueeze(0)
    log_tau = tau_q.log() if per_query else tau_key.log()
    ours = guided_attention(q, k, v, log_tau=log_tau, mask=mask, guidance=mode)
    ref = _naive_attention(q, k, v, tau_q, mode)
    # one attention: a d-term dot product, then a t-term weighted sum
    assert (ours - ref).abs().max() <= rounding_bound(q.dtype, magnitude=float(ref.abs().max()), depth=2, width=max(d, t))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("context", CONTEXTS)
def test_incremental_decode_matches_full_forward(hf_pair, mode, context):
    """Prefill + token-by-token decode with step commits == one full forward with segments."""
    _, folder, _ = hf_pair
    model = _trained_like_model(folder, mode, context=context)
    t_total, bounds = 24, (10, 16, 21)
    ids = _ids(bsz=1, t=t_total)
    seg = _segments(t_total, bounds).unsqueeze(0)
    with torch.no_grad():
        full = model(ids, segment_ids=seg)
        cache = model.allocate_cache(num_slots=3, max_len=64)
        cache.reset(1)
        append = lambda chunk: model.forward_cached(CacheBatch.append(cache, [1], chunk), cache, last_only=False)
        steps = [append(ids[:, : bounds[0]])]
        for pos in range(bounds[0], t_total):
            if pos in bounds:
                n = int(cache.length[1])  # slot 1's live entries
                model.commit_steps(cache, torch.tensor([1]), torch.tensor([n]), n)
            steps.append(append(ids[:, pos : pos + 1]))
    inc = torch.cat(steps, dim=1)
    assert (inc - full).abs().max() <= model_bound(model, full)


def test_batched_decode_with_different_lengths_matches_single(hf_pair):
    _, folder, _ = hf_pair
    model = _trained_like_model(folder, "bias")
    a, b = _ids(bsz=1, t=7, seed=4), _ids(bsz=1, t=12, seed=5)
    with torch.no_grad():
        cache = model.allocate_cache(num_slots=2, max_len=32)
        for s, x in ((0, a), (1, b)):
            cache.reset(s)
            model.forward_cached(CacheBatch.append(cache, [s], x), cache)
        nxt = torch.tensor([[5], [6]])
        batched = model.forward_cached(CacheBatch.append(cache, [0, 1], nxt), cache)
        solo_a = model(torch.cat([a, nxt[:1]], 1))[:, -1]
        solo_b = model(torch.cat([b, nxt[1:]], 1))[:, -1]
    assert (batched[0] - solo_a[0]).abs().max() <= model_bound(model, solo_a)
    assert (batched[1] - solo_b[0]).abs().max() <= model_bound(model, solo_b)


def test_save_and_load_roundtrip(hf_pair, tmp_path):
    _, folder, _ = hf_pair
    model = _trained_like_model(folder, "bias")
    save_pretrained(model, tmp_path / "m", tokenizer_json=folder / "tokenizer.json")
    again = load_model(tmp_path / "m")
    ids = _ids()
    with torch.no_grad():
        assert torch.equal(model(ids), again(ids))
    assert again.guidance == "bias" and again.has_trained_ttm


def _copy_folder(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_load_errors_are_one_line(hf_pair, tmp_path):
    from safetensors.torch import load_file, save_file

    _, folder, _ = hf_pair
    cases = {}
    cases["missing folder"] = (tmp_path / "nope", "nor a model folder")
    bad_arch = _copy_folder(folder, tmp_path / "arch")
    cfg = json.loads((bad_arch / "config.json").read_text())
    cfg["model_type"] = "gpt2"
    (bad_arch / "config.json").write_text(json.dumps(cfg))
    cases["arch"] = (bad_arch, "unsupported architecture 'gpt2'")
    no_cfg = _copy_folder(folder, tmp_path / "nocfg")
    (no_cfg / "config.json").unlink()
    cases["config"] = (no_cfg, "missing config.json")
    pickled = _copy_folder(folder, tmp_path / "pickle")
    torch.save({"x": torch.zeros(1)}, pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    cases["pickle"] = (pickled, "refused, safetensors only")
    missing = _copy_folder(folder, tmp_path / "missing")
    tensors = load_file(missing / "model.safetensors")
    tensors.pop("model.layers.1.mlp.up_proj.weight")
    save_file(tensors, missing / "model.safetensors")
    cases["tensor"] = (missing, "missing tensor 'model.layers.1.mlp.up_proj.weight'")
    shape = _copy_folder(folder, tmp_path / "shape")
    tensors = load_file(shape / "model.safetensors")
    tensors["model.norm.weight"] = torch.ones(3)
    save_file(tensors, shape / "model.safetensors")
    cases["shape"] = (shape, "tensor 'model.norm.weight' has shape (3,), expected (64,)")
    for name, (path, needle) in cases.items():
        with pytest.raises(ModelLoadError) as err:
            load_model(path)
        msg = str(err.value)
        assert needle in msg and "\n" not in msg, (name, msg)
    with pytest.raises(ModelLoadError, match="not a shipped model name"):
        load_model("no-such-model")
    with pytest.raises(ValueError, match="unknown guidance"):
        load_model(folder, guidance="hot")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stacked_ttm_equals_each_layer_and_follows_weight_updates(hf_pair, dtype):
    """The batched boundary refresh (all layers at once, tanh as 2 sigmoid(2x) - 1) and the
    per-layer inference read-out give each layer's own log_temperature to rounding, with context
    projections broadcast over tokens, and their cached weights are rebuilt when a weight
    changes in place (an optimizer step)."""
    _, folder, _ = hf_pair
    model = _trained_like_model(folder, "bias").to(dtype)
    layers = model.model.layers
    g = torch.Generator().manual_seed(7)
    h = torch.randn(len(layers), 3, 5, model.config.hidden_size, generator=g, dtype=dtype)  # [L, S, T, d]
    c = torch.randn(len(layers), 3, model.config.hidden_size, generator=g, dtype=dtype)  # one context per row

    def check():
        with torch.no_grad():
            ah = torch.stack([layer.ttm.project(h[i]) for i, layer in enumerate(layers)])
            stacked = model.stacked_ttm.log_temperature(ah, model.stacked_ttm.context(c).unsqueeze(2))
            each = torch.stack([layer.ttm.log_temperature(ah[i], layer.ttm.context(c[i]).unsqueeze(1))
                                for i, layer in enumerate(layers)])
            read_out = torch.stack([layer.ttm.readout(ah[i], layer.ttm.context(c[i]).unsqueeze(1))
                                    for i, layer in enumerate(layers)])  # the per-token path of forward_cached
        bound = rounding_bound(dtype, magnitude=float(each.abs().max()), depth=2, width=model.config.ttm_dim)
        assert (stacked - each).abs().max() <= bound, ((stacked - each).abs().max(), bound)
        assert (read_out - each).abs().max() <= bound, ((read_out - each).abs().max(), bound)
        return stacked

    before = check()
    with torch.no_grad():
        layers[1].ttm.w.mul_(-3.0)  # in place, like optimizer.step()
        layers[-1].ttm.E.add_(0.5)
    after = check()
    assert (after[1] - before[1]).abs().max() > 1e-3 and (after[0] - before[0]).abs().max() == 0
