"""Train several recipe variants at once on one GPU (NCCL, one process each) and collect what
each reached: used to choose the logic format and learning rate before the CPU run that ships.

    python benchmarks/gpu_train_variants.py --out results.json --minutes 6

Each variant is configs/train/tiny.yaml with the overrides in VARIANTS; every run is a real
`quasar train` (DeepSpeed, NCCL on the GPU) in its own process. Results: docs/training.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "recipe_lr3e-3_4k": {"lr": 3e-3, "max_steps": 4000},
    "lr1e-3_4k": {"lr": 1e-3, "max_steps": 4000},
    "lr1e-3_7k": {"lr": 1e-3, "max_steps": 7000},
    "lr2e-3_6k": {"lr": 2e-3, "max_steps": 6000},
}


def write_config(name: str, overrides: dict, work: Path, minutes: float) -> Path:
    cfg = yaml.safe_load((ROOT / "configs/train/tiny.yaml").read_text())
    cfg |= overrides | {"output_dir": str(work / name), "ship_to": None, "max_minutes": minutes,
                        "val_tasks_per_kind": 200, "eval_every": 1000, "checkpoint_every": 10**6, "threads": 2}
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--work", default="/tmp/gpu_variants")
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    names = args.only or list(VARIANTS)
    procs = {}
    for name in names:
        config = write_config(name, VARIANTS[name], work, args.minutes)
        with open(work / f"{name}.log", "w") as log:  # the child keeps its own copy of the handle
            procs[name] = subprocess.Popen([sys.executable, "-m", "quasar_dist.cli", "train", str(config)],
                                           stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=os.environ.copy())
    t0 = time.time()
    results = {}
    for name, proc in procs.items():
        rc = proc.wait()
        out = work / name
        summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else None
        history = json.loads((out / "history.json").read_text()) if (out / "history.json").exists() else []
        evals = [h for h in history if any(k.startswith("val_") for k in h)]
        tail = (work / f"{name}.log").read_text()[-1500:]
        results[name] = {"rc": rc, "overrides": VARIANTS[name], "summary": summary, "evals": evals,
                         "log_tail": None if rc == 0 else tail}
        print(name, rc, json.dumps(summary and summary["final"]), flush=True)
    results["wall_s"] = time.time() - t0
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
