"""From `quasar run` flags (+ an optional YAML) to a checked RunConfig, and from it to the
ReasoningConfig and ParallelConfig the replicas use. Every mistake is a one-line ConfigError
raised here, before Ray starts or a model loads."""
from __future__ import annotations

from pathlib import Path

from quasar_dist.parallel.config import ParallelConfig
from quasar_dist.reasoning.config import ReasoningConfig
from quasar_dist.util.typed_config import ConfigError, check_relative_path, from_dict, load_yaml_dict

from .config import RunConfig
from .uri import check_uri, is_uri, local_path, strip_query

# `quasar run` option name -> RunConfig field (the others have the same name)
FLAG_TO_FIELD = {"input_path": "input", "output_dir": "output"}
NOT_FIELDS = ("config_path",)


def flags_to_overrides(options: dict) -> dict:
    """The flags that were given (None = not given), under RunConfig field names."""
    return {
        FLAG_TO_FIELD.get(name, name): value
        for name, value in options.items()
        if value is not None and name not in NOT_FIELDS
    }


def resolve_run_config(config_path: str | None = None, overrides: dict | None = None) -> RunConfig:
    """YAML (if any) filled into RunConfig, flags on top; paths and nested settings checked."""
    source = str(config_path) if config_path else "quasar run"
    data = load_yaml_dict(config_path) if config_path else {}
    if "output" in data and isinstance(data["output"], str):
        # a config must not write outside its output folder's tree ('../../etc'); flags are the
        # user's own choice and are not restricted
        check_relative_path(data["output"], source, "output")
    data.update(overrides or {})
    data.update(checked_locations(data))
    cfg = from_dict(RunConfig, data, source=source)
    reasoning_config(cfg, source)  # fail now, not inside a replica
    parallel_config(cfg, source)
    check_output_outside_input(cfg)
    return cfg


def reasoning_config(cfg: RunConfig, source: str = "run config") -> ReasoningConfig:
    return from_dict(ReasoningConfig, {**cfg.gsot, "mode": cfg.mode}, source=source, prefix="gsot.")


def parallel_config(cfg: RunConfig, source: str = "run config") -> ParallelConfig:
    fields = {**cfg.parallel, "tp": cfg.tp, "replicas": cfg.replicas}
    return from_dict(ParallelConfig, fields, source=source, prefix="parallel.")


def checked_locations(data: dict) -> dict:
    """input/output as URIs checked (scheme, no credentials in them: config.yaml keeps them),
    file:// turned into local paths; a bad one is a one-line error before anything starts."""
    located = {}
    for key in ("input", "output"):
        value = data.get(key)
        if isinstance(value, str):
            value = local_path(value)
            located[key] = check_uri(value) if is_uri(value) else value
    return located


def check_output_outside_input(cfg: RunConfig) -> None:
    """Results written inside an input folder would be read back as tasks by the next run."""
    if cfg.input is None or any(ch in cfg.input for ch in "*?["):
        return
    if is_uri(cfg.input) or is_uri(cfg.output):
        source, output = strip_query(cfg.input).rstrip("/") + "/", strip_query(cfg.output).rstrip("/") + "/"
        if output.startswith(source):  # a prefix of objects: inside means below it
            raise ConfigError(f"output folder {cfg.output} is inside the input folder {cfg.input}; pick another --output")
        return
    source, output = Path(cfg.input).resolve(), Path(cfg.output).resolve()
    if source.is_dir() and (output == source or source in output.parents):
        raise ConfigError(f"output folder {cfg.output} is inside the input folder {cfg.input}; pick another --output")
