import json

import pytest
import torch

import models as m

FAMILIES = [
    m.MLPAEConfig(hidden=(32,), latent_dim=4),
    m.MLPAEConfig(hidden=(), latent_dim=20, activation="identity", output_activation="identity"),
    m.MLPAEConfig(hidden=(64, 32, 12), latent_dim=3, recon_loss="bce"),
    m.ConvAEConfig(channels=(4, 8), downsample="stride", batch_norm=True),
    m.ConvAEConfig(channels=(4, 8, 8), downsample="maxpool", batch_norm=False, kernel_size=5),
    m.ConvAEConfig(channels=(4, 8), code_channels=16, fc_latent=5),
    m.ConvAEConfig(channels=(4,), fc_latent=2),
    m.VAEConfig(encoder="mlp", hidden=(32,), latent_dim=3),
    m.VAEConfig(encoder="conv", channels=(4, 8), latent_dim=6, recon_loss="mse", beta=0.5),
    m.ClassifierConfig(encoder=m.MLPAEConfig(hidden=(16,), latent_dim=4), head=()),
    m.ClassifierConfig(
        encoder=m.ConvAEConfig(channels=(4, 8), fc_latent=6),
        head=(8, 8, 8),
        freeze="joint",
        pretrain_epochs=0,
    ),
    m.ClassifierConfig(encoder=m.VAEConfig(hidden=(16,), latent_dim=3), freeze="finetune"),
]


def _roundtrip(config):
    return m.config_from_dict(json.loads(json.dumps(config.to_dict())))


@pytest.mark.parametrize("config", FAMILIES, ids=lambda c: c.family)
def test_config_roundtrips_through_json(config):
    again = _roundtrip(config)
    assert again == config
    assert type(again) is type(config)


@pytest.mark.parametrize("config", FAMILIES, ids=lambda c: c.family)
def test_model_maps_a_batch_to_the_right_shapes(config):
    torch.manual_seed(0)
    model = m.build_model(config)
    x = torch.rand(3, 1, 28, 28)
    z = model.encode(x)
    assert z.shape == (3, config.latent_dim)
    out = model(x)
    if isinstance(config, m.ClassifierConfig):
        assert out.shape == (3, 10)
    elif isinstance(config, m.VAEConfig):
        logits, mu, logvar = out
        assert logits.shape == x.shape and mu.shape == logvar.shape == (3, config.latent_dim)
    else:
        assert out.shape == x.shape
        assert model.decode(z).shape == x.shape


def test_rebuilt_config_gives_the_same_model():
    config = FAMILIES[5]
    torch.manual_seed(1)
    a = m.build_model(config)
    torch.manual_seed(1)
    b = m.build_model(_roundtrip(config))
    assert all(
        torch.equal(p, q)
        for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


@pytest.mark.parametrize("name", sorted(m.PRESETS))
def test_seed_presets_build_and_run(name):
    preset = m.PRESETS[name]
    model = m.build_model(preset.model)
    out = model(torch.rand(2, 1, 28, 28))
    assert (out if torch.is_tensor(out) else out[0]).shape[0] == 2
    assert _roundtrip(preset.model) == preset.model


def test_presets_cover_the_five_seed_systems():
    assert {p.seed for p in m.PRESETS.values()} == {"S0", "S1", "S2", "S3", "S4"}
    s4 = [p.model for p in m.PRESETS.values() if p.seed == "S4"]
    assert {c.fc_latent for c in s4} == {10, None}  # S4's with/without question
    assert m.PRESETS["s2-mlp-ae-3d"].model.latent_dim == 3
    assert m.PRESETS["s1a-linear-ae"].model.hidden == ()


def test_s4_conv_code_shapes():
    model = m.build_model(m.PRESETS["s4-conv-ae-fc"].model)
    feats = model.encoder[0](torch.rand(2, 1, 28, 28))
    assert feats.shape == (2, 32, 7, 7)
    assert model.encode(torch.rand(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize(
    "make, text",
    [
        (lambda: m.MLPAEConfig(latent_dim=1), "latent_dim must be >= 2, but got 1"),
        (lambda: m.MLPAEConfig(activation="swish"), "'swish'"),
        (lambda: m.MLPAEConfig(recon_loss="bce", output_activation="identity"), "sigmoid"),
        (lambda: m.ConvAEConfig(kernel_size=4), "odd"),
        (lambda: m.ConvAEConfig(channels=()), "1 to 4 stages"),
        (lambda: m.VAEConfig(beta=0), "beta"),
        (lambda: m.ClassifierConfig(head=(8, 8, 8, 8)), "0 to 3"),
        (lambda: m.ClassifierConfig(freeze="thaw"), "'thaw'"),
        (lambda: m.ClassifierConfig(freeze="frozen", pretrain_epochs=0), "pretrain_epochs"),
        (lambda: m.TrainConfig(lr=-1), "lr"),
        (lambda: m.config_from_dict({"family": "mlp_ae", "widths": [3]}), "unknown key"),
        (lambda: m.config_from_dict({"family": "gan"}), "'gan'"),
    ],
)
def test_bad_configs_name_the_value(make, text):
    with pytest.raises(m.ConfigError, match=None) as info:
        make()
    assert text in str(info.value)
