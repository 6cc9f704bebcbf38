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
    m.VAEConfig.mlp(hidden=(32,), latent_dim=3),
    m.VAEConfig.conv(channels=(4, 8), latent_dim=6, recon_loss="mse", beta=0.5),
    m.ClassifierConfig(encoder=m.MLPAEConfig(hidden=(16,), latent_dim=4), head=()),
    m.ClassifierConfig(
        encoder=m.ConvAEConfig(channels=(4, 8), fc_latent=6),
        head=(8, 8, 8),
        freeze="joint",
        pretrain_epochs=0,
    ),
    m.ClassifierConfig(encoder=m.VAEConfig.mlp(hidden=(16,), latent_dim=3), freeze="finetune"),
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


LEGACY_VAES = {
    # Flat VAE dicts as studies made before the composed config stored them, with the
    # state-dict keys and shapes those models had: old checkpoints must keep loading.
    "mlp": (
        {"family": "vae", "encoder": "mlp", "hidden": [32, 16], "channels": [32, 64],
         "downsample": "stride", "batch_norm": False, "kernel_size": 3, "latent_dim": 3,
         "activation": "leaky_relu", "beta": 1.0, "recon_loss": "bce",
         "output_activation": "sigmoid"},
        {"features.1.0.weight": [32, 784], "features.1.0.bias": [32],
         "features.1.2.weight": [16, 32], "features.1.2.bias": [16],
         "decoder.0.0.weight": [16, 3], "decoder.0.0.bias": [16],
         "decoder.0.2.weight": [32, 16], "decoder.0.2.bias": [32],
         "decoder.0.4.weight": [784, 32], "decoder.0.4.bias": [784],
         "mean.weight": [3, 16], "mean.bias": [3], "logvar.weight": [3, 16], "logvar.bias": [3]},
    ),
    "conv": (
        {"family": "vae", "encoder": "conv", "hidden": [400, 400], "channels": [4, 8],
         "downsample": "maxpool", "batch_norm": False, "kernel_size": 3, "latent_dim": 5,
         "activation": "leaky_relu", "beta": 0.5, "recon_loss": "bce",
         "output_activation": "sigmoid"},
        {"features.0.0.weight": [4, 1, 3, 3], "features.0.0.bias": [4],
         "features.0.3.weight": [8, 4, 3, 3], "features.0.3.bias": [8],
         "decoder.0.weight": [392, 5], "decoder.0.bias": [392],
         "decoder.3.0.weight": [8, 4, 3, 3], "decoder.3.0.bias": [4],
         "decoder.3.2.weight": [4, 1, 3, 3], "decoder.3.2.bias": [1],
         "mean.weight": [5, 392], "mean.bias": [5], "logvar.weight": [5, 392],
         "logvar.bias": [5]},
    ),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(LEGACY_VAES))
def test_a_flat_vae_dict_of_an_older_study_rebuilds_the_same_layers(kind):
    flat, keys = LEGACY_VAES[kind]
    config = m.config_from_dict(flat)
    assert config.encoder == kind and config.latent_dim == flat["latent_dim"]
    assert config.beta == flat["beta"]
    model = m.build_model(config)
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == keys
    composed = config.to_dict()
    assert set(composed) == {"family", "autoencoder", "beta"}
    if kind == "conv":  # no MLP widths carried by a conv VAE any more
        assert "hidden" not in composed["autoencoder"]


def test_a_checkpoint_saved_before_the_composed_vae_config_loads_and_encodes_the_same():
    from pathlib import Path

    from study.artifacts import checkpoint

    fixtures = Path(__file__).parent.parent / "fixtures"
    model, spec = checkpoint.load(str(fixtures / "legacy-conv-vae.pt"))
    io = torch.load(fixtures / "legacy-conv-vae-io.pt", weights_only=True)
    assert spec.model.encoder == "conv" and spec.model.latent_dim == 5
    with torch.no_grad():
        torch.testing.assert_close(model.encode(io["x"]), io["mu"])


def test_a_conv_vae_needs_its_latent_size():
    with pytest.raises(m.ConfigError, match="fc_latent"):
        m.VAEConfig(m.ConvAEConfig(channels=(4, 8)))
