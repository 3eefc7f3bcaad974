"""A tiny training config for the tests (trains in about a second per variant)."""

from __future__ import annotations

TINY_OVERRIDES = {
    "model": {
        "dam": {"latent": 8, "texture_size": 32, "channels": [8, 8], "geometry_hidden": 32, "view_features": 4},
        "hmc": {"input_size": [24, 32], "channels": [4, 8], "features": 16},
        "kpt": {"hidden": 32, "blocks": 2, "features": 16, "dropout": 0.1},
        "flow": {"layers": 2, "hidden": 16, "blocks_per_layer": 1},
    },
    "data": {"views_per_frame": 2, "validation": 0.34, "test": 0.34, "hmc": {"views_size": [48, 64]}},
    "train": {"batch": 2, "lr": 0.0005, "steps": 12, "eval_every": 4, "log_every": 2, "checkpoint_every": 4,
              "max_minutes": None, "backend": "bbox", "device": "cpu"},
}


def tiny_config(variant: str, condition: str = "hmc", **train):
    from avatarfit.config import merge_mappings
    from avatarfit.train.config import load_train_config

    overrides = merge_mappings(TINY_OVERRIDES, {"model": {"variant": variant, "condition": condition}, "train": train})
    return load_train_config(None, overrides)


def tiny_sets() -> list[str]:
    """:data:`TINY_OVERRIDES` as ``key=value`` strings for ``--set``."""
    import yaml

    def flat(prefix, d):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flat(f"{prefix}{k}.", v)
            else:
                yield f"{prefix}{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"

    return list(flat("", TINY_OVERRIDES))
