"""Named presets: published model sizes and shipped data layouts, expanded before validation.

A researcher with agilex episodes and the rdt-1b checkpoint should write two words
(`data.preset: agilex`, `model.size: rdt-1b`) instead of copying fourteen unified-vector
names and four gripper constants from someone's dataset class. Presets only fill in: a key
the user wrote wins for data layouts, and contradicts (an error) for model sizes, because
a "rdt-1b" with another width is not rdt-1b and could not load its weights.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from rdtflow.errors import ConfigError, MissingFile

# Published architectures (config.json of the public checkpoints: rdt-1b, rdt-170m).
MODEL_SIZES: dict[str, dict[str, int]] = {
    "rdt-1b": {"hidden_size": 2048, "depth": 28, "num_heads": 32},
    "rdt-170m": {"hidden_size": 1024, "depth": 14, "num_heads": 32},
}

_REPO_CONFIG = Path(__file__).parents[1] / "config"


def shipped(kind: str) -> list[str]:
    """Names of the shipped YAML files of one kind (config/{kind}/*.yaml)."""
    folders = (Path("config") / kind, _REPO_CONFIG / kind)
    return sorted({path.stem for folder in folders if folder.is_dir() for path in folder.glob("*.yaml")})


def load_named(kind: str, spec: str, key: str) -> dict:
    """A shipped YAML of `kind` by name (config/{kind}/{spec}.yaml), or any YAML file by path.

    `key` is the config key that named it, for the error message.
    """
    if spec.endswith((".yaml", ".yml")):
        candidates = [Path(spec)]
    else:
        candidates = [Path("config") / kind / f"{spec}.yaml", _REPO_CONFIG / kind / f"{spec}.yaml"]
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        raise MissingFile(
            f"{key}: no {kind} preset '{spec}' (looked for {', '.join(str(c) for c in candidates)}); "
            f"shipped: {', '.join(shipped(kind)) or 'none'}"
        )
    return {"name": found.stem, **(yaml.safe_load(found.read_text()) or {})}


def _merged(base: dict, override: dict) -> dict:
    """`override` over `base`, recursing into mappings both have."""
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


def expand_model_size(model: dict) -> None:
    """Fill hidden_size/depth/num_heads from model.size; a contradicting explicit value is an error."""
    name = model.get("size")
    if name is None:
        return
    if name not in MODEL_SIZES:
        raise ConfigError(f"model.size: unknown size '{name}'; known sizes: {', '.join(MODEL_SIZES)} (or leave it out)")
    conflicts = [f"model.{key} is {model[key]}" for key, value in MODEL_SIZES[name].items() if model.get(key, value) != value]
    if conflicts:
        raise ConfigError(
            f"model.size {name} means {MODEL_SIZES[name]}, but {', '.join(conflicts)}: remove those keys, or remove "
            "model.size to choose a custom architecture"
        )
    model.update(MODEL_SIZES[name])


def expand_data_preset(config: dict) -> None:
    """Replace data.preset's name by the preset's keys under the user's own data keys."""
    data = config.get("data") or {}
    name = data.get("preset")
    if not name:
        return
    preset = load_named("data", name, "data.preset")
    del preset["name"]
    config["data"] = _merged(preset, data)


def expand_presets(config: dict) -> None:
    """Expand model.size and data.preset in place; runs before schema validation."""
    if isinstance(config.get("model"), dict):
        expand_model_size(config["model"])
    expand_data_preset(config)
