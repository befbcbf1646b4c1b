"""Which guidance form should be the default? Measure how lossless evicting cold keys is.

For each mode (scale, bias) on the same weights: prefill a prompt into the cache, evict the
keys whose temperature is below a threshold, then compare the next-token distribution with
and without eviction (KL divergence and top-1 agreement). Under `bias` a cold key has already
lost its attention mass, so evicting it should change little; under `scale` a cold key's
logit is only flattened towards 0 and it keeps weight exp(0)/Z, so evicting it changes more.

Run: .venv/bin/python benchmarks/guidance_modes.py [--model tiny]
"""
from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from quasar_dist.data.tasks import make_tasks
from quasar_dist.model import TextTokenizer, load_model, resolve_model_path


@torch.no_grad()
def eviction_error(model, tokenizer, prompts, threshold: float, sink: int = 4, recent: int = 8):
    kls, agree, evicted, total = [], 0, 0, 0
    for prompt in prompts:
        ids = torch.tensor([tokenizer.encode_prompt(prompt)])
        cache = model.allocate_cache(2, ids.shape[1] + 4)
        for slot in (0, 1):
            cache.reset(slot)
            model.forward_cached(ids[:, :-1], cache, torch.tensor([slot]))
            model.commit_step(cache, slot)
        tau = cache.token_temperature(1)
        keep = tau >= threshold
        keep[:sink] = True
        keep[-recent:] = True
        evicted += cache.evict(1, keep)
        total += tau.numel()
        last = ids[:, -1:]
        full = F.log_softmax(model.forward_cached(last, cache, torch.tensor([0])), -1)
        pruned = F.log_softmax(model.forward_cached(last, cache, torch.tensor([1])), -1)
        kls.append(float((full.exp() * (full - pruned)).sum()))
        agree += int(full.argmax() == pruned.argmax())
    return {
        "evicted_fraction": evicted / max(1, total),
        "mean_kl": sum(kls) / len(kls),
        "max_kl": max(kls),
        "top1_agreement": agree / len(prompts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--thresholds", default="0.2,0.4,0.6")
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder = resolve_model_path(args.model)
    tasks = make_tasks("mixed", args.n, 4242, "test")
    results = {}
    for mode in ("scale", "bias"):
        model = load_model(folder, guidance=mode)
        tokenizer = TextTokenizer.from_folder(folder, model.config)
        for th in (float(x) for x in args.thresholds.split(",")):
            results[f"{mode}@{th}"] = eviction_error(model, tokenizer, [t["prompt"] for t in tasks], th)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
