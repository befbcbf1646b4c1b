"""Can the shipped model's shape learn an in-context lookup, and how fast? (docs/training.md)

The `logic` tasks need one lookup per hop: after "given A so", find the rule "if A then B" and
copy B. This probe isolates that skill on synthetic sequences, with the shipped shape (d=128,
4 layers, 4 heads / 2 kv heads, guidance off, no TTM loss):

    BOS  A1 [f]*gap B1 SEP ... A6 [f]*gap B6 SEP  Q A3 [f]*gap B3  Q A5 [f]*gap B5 ...

A_i, B_i are distinct atoms from 30; every pair is queried once in random order; the loss is on
the queried B only. gap=0 is the textbook induction pattern (A B ... A -> B), gap=1 is the
logic task's ("A then B" ... "A so" -> B). Chance is 1/6 for a model that knows B is one of
the six conclusions; picking among the not-yet-queried ones (no lookup) gives ~0.41.

    .venv/bin/python benchmarks/lookup_probe.py --gap 1 --steps 800 --lr 1e-3
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from quasar_dist.model.config import ModelConfig
from quasar_dist.model.decoder import QuasarForCausalLM

ATOM0, NUM_ATOMS, FILLER, SEP, QUERY = 100, 30, 5, 6, 7


def make_batch(gen: torch.Generator, batch: int, pairs: int, gap: int, query_gap: int | None = None):
    """ids [B, T] and a bool mask of the positions whose next token is a queried B. `gap`
    fillers stand between A and B in the pairs, `query_gap` (default: gap) in the queries."""
    query_gap = gap if query_gap is None else query_gap
    seqs, marks = [], []
    for _ in range(batch):
        atoms = torch.randperm(NUM_ATOMS, generator=gen)[: 2 * pairs] + ATOM0
        a, b = atoms[:pairs].tolist(), atoms[pairs:].tolist()
        seq = [1]
        for i in range(pairs):
            seq += [a[i]] + [FILLER] * gap + [b[i], SEP]
        mark = [False] * len(seq)
        for i in torch.randperm(pairs, generator=gen).tolist():
            seq += [QUERY, a[i]] + [FILLER] * query_gap
            mark += [False] * (query_gap + 1) + [True]
            seq.append(b[i])
            mark.append(False)
        seqs.append(seq)
        marks.append(mark)
    return torch.tensor(seqs), torch.tensor(marks)


def build(seed: int) -> QuasarForCausalLM:
    cfg = ModelConfig(vocab_size=512, hidden_size=128, intermediate_size=384, num_layers=4, num_heads=4,
                      num_kv_heads=2, max_position_embeddings=256, tie_word_embeddings=True, ttm_dim=32,
                      guidance="off")
    torch.manual_seed(seed)
    model = QuasarForCausalLM(cfg)
    for name, p in model.named_parameters():
        if p.dim() == 2 and ".ttm." not in name:
            torch.nn.init.normal_(p, 0.0, 0.02)  # as quasar_dist.train.trainer.build_model
    return model


def lookup_loss(model, ids, marks):
    logits = model(ids)[:, :-1][marks[:, :-1]]
    targets = ids[:, 1:][marks[:, :-1]]
    return F.cross_entropy(logits, targets), (logits.argmax(-1) == targets).float().mean().item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gap", type=int, default=1, help="tokens between A and B (0: textbook induction)")
    ap.add_argument("--query-gap", type=int, default=None, help="fillers between A and B in the queries (default: --gap)")
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--easy-steps", type=int, default=0, help="curriculum: this many first steps use 2 pairs")
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = build(args.seed)
    opt = torch.optim.AdamW([p for n, p in model.named_parameters() if ".ttm." not in n],
                            lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)
    gen, held = torch.Generator().manual_seed(args.seed), torch.Generator().manual_seed(args.seed + 1)
    t0 = time.time()
    for step in range(1, args.steps + 1):
        pairs = 2 if step <= args.easy_steps else args.pairs
        loss, _ = lookup_loss(model, *make_batch(gen, args.batch_size, pairs, args.gap, args.query_gap))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % args.every == 0:
            with torch.no_grad():
                val_loss, acc = lookup_loss(model, *make_batch(held, 256, args.pairs, args.gap, args.query_gap))
            print(f"gap={args.gap}/{args.gap if args.query_gap is None else args.query_gap} lr={args.lr:g} step {step} train_loss {loss.item():.3f} "
                  f"val_loss {val_loss.item():.3f} val_acc {acc:.3f} ({time.time() - t0:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
