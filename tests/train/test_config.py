import pytest

from avatarfit.errors import FormatError
from avatarfit.train.config import load_train_config


def test_base_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("model: {dam: {latent: 32}}\ntrain: {lr: 0.001, steps: 10}\n")
    (tmp_path / "run.yaml").write_text("base: base.yaml\nmodel: {variant: lip_flow}\ntrain: {steps: 20}\n")
    config = load_train_config(tmp_path / "run.yaml", ["train.batch=8", "model.condition=kpt"])
    assert config.model.variant == "lip_flow" and config.model.condition == "kpt"
    assert config.model.dam.latent == 32 and config.train.lr == 0.001
    assert config.train.steps == 20 and config.train.batch == 8
    assert config.lambda_latent == 5e-4 and config.lambda_entropy == 5e-4


@pytest.mark.parametrize(
    "text, message",
    [
        ("model: {dam: {latnet: 3}}\n", r"run.yaml: .*unknown key\(s\) \['latnet'\]"),
        ("model: {variant: vae}\n", r"model.variant: expected one of"),
        ("train: {lr: fast}\n", r"train.lr: expected float, found str 'fast'"),
        ("model: {variant: dam_hmc_reg}\n", r"train.pretrained"),
        ("base: missing.yaml\n", r"missing.yaml: config file not found"),
        ("- 1\n", r"expected a mapping"),
    ],
)
def test_errors_name_the_key_and_file(tmp_path, text, message):
    (tmp_path / "run.yaml").write_text(text)
    with pytest.raises(FormatError, match=message):
        load_train_config(tmp_path / "run.yaml")


def test_bad_override():
    with pytest.raises(ValueError, match="KEY=VALUE"):
        load_train_config(None, ["train.lr"])


def test_shipped_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs" / "train"
    files = sorted(root.glob("*/*.yaml"))
    assert len(files) == 24
    for f in files:
        c = load_train_config(f, ["train.pretrained=RUN"] if "reg" in f.name else None)
        assert f.name.startswith(c.model.variant) and f.stem.endswith(c.model.condition)


def test_latent_reduction_defaults_per_variant_and_can_be_set():
    from avatarfit.models import VARIANTS

    expected = {"dam": "mean", "dam_flow": "sum", "dam_hmc_enc": "mean", "dam_hmc_reg": "mean", "lip_kl": "mean",
                "lip_flow": "sum"}
    for name, reduction in expected.items():
        extra = ["train.pretrained=RUN"] if VARIANTS[name].pretrained else []
        assert load_train_config(None, [f"model.variant={name}"] + extra).latent_reduction == reduction
    assert load_train_config(None, ["model.variant=dam", "loss.latent_reduction=sum"]).latent_reduction == "sum"
    with pytest.raises(ValueError, match="loss.latent_reduction: expected 'sum' or 'mean', got 'max'"):
        load_train_config(None, ["loss.latent_reduction=max"])


def test_cosine_schedule_ends_at_the_final_fraction_and_bad_values_are_named():
    from avatarfit.train.config import ScheduleConfig

    flat = ScheduleConfig(lr=1e-3, steps=100)
    assert flat.lr_at(0) == flat.lr_at(99) == 1e-3
    cos = ScheduleConfig(lr=1e-3, steps=100, lr_schedule="cosine", lr_final=0.1)
    rates = [cos.lr_at(s) for s in range(101)]
    assert rates[0] == pytest.approx(1e-3) and rates[100] == pytest.approx(1e-4)
    assert rates[50] == pytest.approx(0.55e-3)
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    for kwargs, message in (({"lr_schedule": "step"}, "train.lr_schedule: expected constant or cosine"),
                            ({"lr_final": 0.0}, r"train.lr_final: expected a fraction of lr in \(0, 1\]"),
                            ({"grad_clip": float("nan")}, "train.grad_clip: expected a positive gradient norm"),
                            ({"lr": float("inf")}, "train.lr: expected a positive learning rate")):
        with pytest.raises(ValueError, match=message):
            ScheduleConfig(**kwargs)
