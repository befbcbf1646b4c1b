"""Training loss (paper eq. 70): L = L_task + lambda_T * L_anti_collapse + lambda_S * L_sparsity."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from quasar_dist.model.kv_cache import combine_layers
from quasar_dist.model.prefill_drop import protected_tokens


def task_loss(logits: torch.Tensor, ids: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Next-token loss on solution and answer tokens only (never on the prompt)."""
    targets = ids[:, 1:]
    mask = loss_mask[:, :-1]
    return F.cross_entropy(logits[:, :-1][mask], targets[mask])


def visible_temperature_mask(segment_ids: torch.Tensor, ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """[B, S, T]: key j's temperature under step s's context is used iff seg(j) <= s (the key
    is visible to that step's queries) and step s exists in that row."""
    num_segments = int(segment_ids.max()) + 1
    s = torch.arange(num_segments, device=segment_ids.device)[None, :, None]
    real = ids != pad_id
    last = torch.where(real, segment_ids, torch.zeros_like(segment_ids)).max(1).values  # [B]
    return (segment_ids[:, None, :] <= s) & real[:, None, :] & (s <= last[:, None, None])


def temperature_losses(log_taus: list[torch.Tensor], visible: torch.Tensor, tau_max: float):
    """anti-collapse mean((tau/tau_max - 0.5)^2) (the paper's ||T - 0.5||^2 for T in (0, 1))
    and the sparsity budget mean(tau/tau_max), over visible (step, key) pairs of every layer."""
    tau = torch.stack([lt.exp() / tau_max for lt in log_taus])  # [L, B, S, T]
    m = visible.unsqueeze(0).expand_as(tau)
    t = tau[m]
    return ((t - 0.5) ** 2).mean(), t.mean()


def keep_logit_of(log_tau: torch.Tensor, tau_max: float) -> torch.Tensor:
    """z with tau = tau_max * sigmoid(z), recovered from log tau (clamped where p -> 0 or 1)."""
    log_p = (log_tau - math.log(tau_max)).clamp(max=-1e-6)
    return (log_p - torch.log(-torch.expm1(log_p))).clamp(-30.0, 30.0)


def relevance_loss(log_taus: list[torch.Tensor], relevance: torch.Tensor, visible: torch.Tensor, tau_max: float,
                   first_step_only: bool = False) -> torch.Tensor:
    """Supervised importance: binary cross-entropy of every layer's keep probability
    tau / tau_max (logit z) against the ground-truth relevance of each labelled prompt key
    (`relevance` [B, T]: 1, 0 or -1 unlabelled), under the context of every step that sees it
    (s >= 1: a prompt token the solution needs is needed by the whole solution), or with
    `first_step_only` under step 1's alone (what a decision right after the prompt sees; a chain
    context started from a later step's hop cannot find the links before it). Zero when the
    batch has no labels."""
    steps = slice(1, 2) if first_step_only else slice(1, None)
    labelled = (relevance >= 0)[:, None, :] & visible[:, steps]  # [B, S', T]
    if not bool(labelled.any()):
        return log_taus[0].sum() * 0.0
    target = relevance[:, None, :].expand_as(labelled)[labelled].float()
    z = torch.stack([keep_logit_of(lt[:, steps], tau_max)[labelled] for lt in log_taus])  # [L, n]
    return F.binary_cross_entropy_with_logits(z, target.expand_as(z))


class RelaxedEviction:
    """Eviction in the training forward (DMS-style; docs/model.md), made the way inference makes
    it: once, right after the prompt, and for good. Under `bias` guidance a key's log temperature
    is log tau_max + logsigmoid(z), a soft keep decision with probability sigmoid(z). For every
    prompt key that is not protected (the first `sinks` tokens, the last `window` prompt tokens)
    a relaxed hard decision logsigmoid((z_1 + logistic noise) / gamma) is drawn from its keep
    logit z_1 under step 1's context (the prompt read, the question included) and added to the
    attention bias of the queries of *every* step: near 0 (kept) or very negative (evicted). A
    token some later step needs and that is evicted costs task loss there, so the loss teaches
    which prompt tokens the whole solution needs; `budget_loss` makes the others go. The soft
    per-step temperatures stay as they are. `gated` [B, S, T] marks the decided pairs.

    The decision is one per token for every layer, as inference's is (the cache keeps or drops
    an entry in all layers): `decide(log_taus)` takes it from the largest keep probability over
    layers (an entry one layer needs must stay) of a forward without eviction (the first of the
    two training forwards; the prompt's own computations do not depend on the decision, so they
    are the same in both). The budget counts it too, so layers are pushed to agree: with a
    mean over layers, each layer had kept its own quarter and the union was half the prompt."""

    def __init__(self, segment_ids: torch.Tensor, prompt_len: torch.Tensor, *, sinks: int, window: int,
                 gamma: float, tau_max: float, generator: torch.Generator | None = None) -> None:
        t = segment_ids.shape[1]
        num_segments = int(segment_ids.max()) + 1
        pos = torch.arange(t, device=segment_ids.device)[None, :]
        self.decided = (pos >= sinks) & (pos < (prompt_len[:, None] - window))  # [B, T]
        step = torch.arange(num_segments, device=segment_ids.device)[None, :, None] >= 1
        self.gated = step & self.decided[:, None, :]  # [B, S, T]
        self.gamma, self.tau_max, self.generator = gamma, tau_max, generator
        self.gate: torch.Tensor | None = None
        self.keep_p: torch.Tensor | None = None

    def decide(self, log_taus: list[torch.Tensor]) -> None:
        """Draw the relaxed decisions [B, T] from the largest keep probability over layers under
        step 1's context (max_l sigmoid(z_l): the order inference ranks entries in)."""
        if log_taus[0].shape[1] < 2:
            return
        self.keep_p = torch.stack([(lt[:, 1] - math.log(self.tau_max)).exp() for lt in log_taus]).amax(0)
        p = self.keep_p.clamp(1e-6, 1 - 1e-6)
        z = torch.log(p) - torch.log1p(-p)
        u = torch.rand(z.shape, generator=self.generator, device=z.device, dtype=z.dtype).clamp(1e-6, 1 - 1e-6)
        self.gate = F.logsigmoid((z + torch.log(u) - torch.log1p(-u)) / self.gamma)

    def __call__(self, log_tau_s: torch.Tensor) -> torch.Tensor:
        if self.gate is None or log_tau_s.shape[1] < 2:
            return log_tau_s
        return log_tau_s + torch.where(self.gated, self.gate.unsqueeze(1).to(log_tau_s.dtype), torch.zeros((), dtype=log_tau_s.dtype))

    def kept_fraction(self) -> torch.Tensor:
        """Mean keep probability (max over layers) over the decided prompt keys."""
        return self.keep_p[self.decided].mean()


def budget_loss(kept: torch.Tensor, target: float) -> torch.Tensor:
    """One-sided hinge max(0, kept - target): only keeping more than the budget is penalised."""
    return F.relu(kept - target)


def keep_target(step: int, final: float, ramp_steps: int) -> float:
    """The budget tightens linearly from keep-everything to `final` over `ramp_steps` (DMS raises
    its compression target the same way), then stays."""
    return 1.0 - (1.0 - final) * min(1.0, step / max(1, ramp_steps))


HIDDEN_BIAS = -1e4  # an attention bias whose exp is 0 in every float type the model trains in


class PrefillDropInTraining:
    """Algorithm 1 as GSoT runs it (model/prefill_drop.py) inside a training forward, so that the
    decoder learns to answer from what prefill dropping keeps. Each prompt token gets the
    decision inference makes, from the temperatures of a forward without the drop (`log_taus`,
    no gradient): kept if protected (the first `sinks`, the last `recent` prompt tokens, at least
    the last) or if its largest log temperature over layers 0..`layers` under step 1's context
    is at least log(keep_above). A dropped key is hidden from every query of the layers from
    `layers` on, and from the steps' queries of the layers before it (their cache holds the kept
    entries only); the prompt's own queries in those first layers see every prompt token, as in
    prefill. `maps()` gives each layer's attention bias (0 or HIDDEN_BIAS, the soft temperatures
    left out): with `bias` guidance the forward then attends exactly as the engine does with
    guidance off and prefill dropping on."""

    def __init__(self, log_taus: list[torch.Tensor], segment_ids: torch.Tensor, *, layers: int, keep_above: float,
                 sinks: int, recent: int) -> None:
        prompt_len = (segment_ids == 0).sum(1)
        score = combine_layers(torch.stack([lt[:, 1] for lt in log_taus[: layers + 1]]), "max")  # [B, T], step 1's context
        in_prompt, protected = protected_tokens(prompt_len, segment_ids.shape[1], sinks, recent)
        self.dropped = in_prompt & ~protected & (score < math.log(keep_above))  # [B, T]
        self.layers = layers
        self.prompt_len = prompt_len

    def maps(self, num_layers: int, num_segments: int, dtype: torch.dtype) -> list:
        """One map per layer: log_tau_by_segment [B, S, T] -> the bias attention adds."""
        hidden = torch.where(self.dropped, HIDDEN_BIAS, 0.0).to(dtype)[:, None, :]  # [B, 1, T]
        steps_only = (torch.arange(num_segments, device=hidden.device) >= 1).to(dtype)[None, :, None]
        early, late = hidden * steps_only, hidden.expand(-1, num_segments, -1)  # [B, S, T]
        return [(lambda _, bias=early if i < self.layers else late: bias) for i in range(num_layers)]

    def kept_fraction(self) -> float:
        """Share of the prompt tokens kept."""
        return 1.0 - float(self.dropped.sum()) / max(1, int(self.prompt_len.sum()))
