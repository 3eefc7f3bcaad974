import pytest

from avatarfit.config import from_dict, load_yaml, to_dict
from avatarfit.errors import FormatError
from avatarfit.synth.generate import SynthConfig


def test_yaml_round_trip_and_repo_configs(tmp_path):
    import yaml

    cfg = SynthConfig(frames=3, image_size=(64, 48))
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    assert load_yaml(SynthConfig, path) == cfg
    from pathlib import Path

    for f in sorted((Path(__file__).parents[1] / "configs" / "synth").glob("*.yaml")):
        assert isinstance(load_yaml(SynthConfig, f), SynthConfig)


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("frames: 2\nframez: 3\n")
    with pytest.raises(FormatError, match=r"c.yaml: .*unknown key\(s\) \['framez'\]"):
        load_yaml(SynthConfig, path)


def test_wrong_type_is_named():
    with pytest.raises(ValueError, match=r"config.frames: expected int, found str"):
        from_dict(SynthConfig, {"frames": "many"})
