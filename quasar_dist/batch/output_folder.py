"""Setting up the run folder: results/ ready (temps of a killed run removed, or everything cleared
for --no-resume), the resolved config saved as config.yaml, and a resume refused when the
folder's results come from a different model, mode or reasoning settings (mixing them would
make one report describe two experiments)."""
from __future__ import annotations

import yaml

from quasar_dist.util.typed_config import ConfigError, to_dict

from .config import RunConfig
from .folder_io import read_text, write_text
from .resolve import parallel_config, reasoning_config
from .results_store import clean_temp_files, clear_results, result_files, results_dir
from .uri import is_uri

CONFIG_FILE = "config.yaml"
MUST_MATCH_TO_RESUME = ("model", "ttm", "mode", "gsot")


def resolved_config(cfg: RunConfig) -> dict:
    """The run config with every reasoning and replica setting spelled out (defaults included):
    loadable again with --config."""
    data = to_dict(cfg)
    data["gsot"] = {k: v for k, v in to_dict(reasoning_config(cfg)).items() if k != "mode"}
    data["parallel"] = {k: v for k, v in to_dict(parallel_config(cfg)).items() if k not in ("tp", "replicas")}
    return data


def prepare_output(cfg: RunConfig) -> dict:
    """Create/clean the folder, check a resume is consistent, write config.yaml; returns it.
    Call it holding output_lock: it deletes temp files, which must not be a live run's."""
    out = cfg.output
    if not is_uri(out):  # a store has no folders to make: a prefix exists once an object is under it
        results_dir(out).mkdir(parents=True, exist_ok=True)
    if not cfg.resume:
        clear_results(out)
    clean_temp_files(out)
    resolved = resolved_config(cfg)
    if result_files(out):
        _check_same_experiment(out, resolved)
    write_text(out, CONFIG_FILE, yaml.safe_dump(resolved, sort_keys=False))
    return resolved


def _check_same_experiment(out: str, resolved: dict) -> None:
    text = read_text(out, CONFIG_FILE)
    if text is None:
        return
    saved = yaml.safe_load(text) or {}
    for key in MUST_MATCH_TO_RESUME:
        if key not in saved:
            continue
        old, new = _flat(key, saved[key]), _flat(key, resolved[key])
        # keys in both only: a setting added to the code since the folder was made is not a change
        differing = sorted(k for k in old.keys() & new.keys() if old[k] != new[k])
        if differing:
            name = differing[0]
            raise ConfigError(
                f"{out} holds results made with {name}={old.get(name)!r}, not {new.get(name)!r}; "
                "use another --output, or --no-resume to replace them"
            )


def _flat(key: str, value) -> dict:
    if isinstance(value, dict):
        return {f"{key}.{k}": v for k, v in value.items()}
    return {key: value}

