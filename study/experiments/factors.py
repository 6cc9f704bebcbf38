"""The factors ``study.ablate`` varies, each a function from a trial's spec and a level to the
spec with only that factor changed.

- ``freeze``: frozen / finetune / joint / scratch (classifiers: S0's question);
- ``fc-bottleneck``: on / off (conv autoencoders: S4's question); ``on`` adds S4's 10-wide
  bottleneck to a trial without one;
- ``latent``: latent sizes (S2, S3);
- ``arch``: mlp / conv at the same latent size, the other one at its default widths
  (``MLPAEConfig()``: 128-64; ``ConvAEConfig()``: 16-32 channels with an FC latent);
- ``family``: ae / vae encoder of a classifier (the same network, with or without a
  variational latent).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from models import FREEZE_CHOICES, ClassifierConfig, ConvAEConfig, MLPAEConfig, VAEConfig
from objectives import TrialSpec
from study.errors import UsageError

S4_BOTTLENECK = 10
LATENTS = (2, 4, 8, 16, 32)


def autoencoder(model):
    """The autoencoder network inside a model (a classifier's encoder, a VAE's network)."""
    if isinstance(model, ClassifierConfig):
        return autoencoder(model.encoder)
    if isinstance(model, VAEConfig):
        return model.autoencoder
    return model


def with_autoencoder(model, ae):
    """``model`` with its autoencoder network replaced by ``ae``."""
    if isinstance(model, ClassifierConfig):
        return replace(model, encoder=with_autoencoder(model.encoder, ae))
    if isinstance(model, VAEConfig):
        return replace(model, autoencoder=ae)
    return ae


@dataclass(frozen=True)
class Factor:
    name: str
    question: str
    applies: Callable[[Any], bool]  # model config -> whether this factor can vary on it
    level_of: Callable[[Any], Any]  # model config -> its own level
    default_levels: Callable[[Any], tuple]
    apply: Callable[[Any, Any], Any]  # (model config, level) -> model config
    parse: Callable[[str], Any] = str


def _freeze(model, level: str):
    pretrain = model.pretrain_epochs or 2
    return replace(model, freeze=level, pretrain_epochs=pretrain)


def _is_vae(model) -> bool:
    return isinstance(model.encoder if isinstance(model, ClassifierConfig) else model, VAEConfig)


def _is_conv(model) -> bool:
    return isinstance(autoencoder(model), ConvAEConfig)


def _fc(model, level: str):
    ae = autoencoder(model)
    if level == "off":
        return with_autoencoder(model, replace(ae, fc_latent=None))
    return with_autoencoder(model, replace(ae, fc_latent=ae.fc_latent or S4_BOTTLENECK))


def _can_set_latent(model) -> bool:
    ae = autoencoder(model)
    return isinstance(ae, MLPAEConfig) or (
        isinstance(ae, ConvAEConfig) and (ae.fc_latent is not None or ae.code_channels is not None)
    )


def _latent(model, size: int):
    ae = autoencoder(model)
    if isinstance(ae, MLPAEConfig):
        return with_autoencoder(model, replace(ae, latent_dim=size))
    key = "fc_latent" if ae.fc_latent is not None else "code_channels"
    return with_autoencoder(model, replace(ae, **{key: size}))


def _arch_of(model) -> str:
    return "conv" if _is_conv(model) else "mlp"


def _arch(model, level: str):
    ae = autoencoder(model)
    if level == _arch_of(model):
        return model
    shared = {
        "activation": ae.activation,
        "output_activation": ae.output_activation,
        "recon_loss": ae.recon_loss,
    }
    if level == "mlp":
        return with_autoencoder(model, MLPAEConfig(latent_dim=ae.latent_dim, **shared))
    return with_autoencoder(model, ConvAEConfig(fc_latent=ae.latent_dim, **shared))


def _family_of(model) -> str:
    return "vae" if isinstance(model.encoder, VAEConfig) else "ae"


def _family(model, level: str):
    if level == _family_of(model):
        return model
    ae = autoencoder(model)
    if level == "ae":
        return replace(model, encoder=ae)
    if isinstance(ae, ConvAEConfig) and ae.fc_latent is None:  # a VAE's latent is an FC layer
        ae = replace(ae, fc_latent=ae.latent_dim)
    return replace(model, encoder=VAEConfig(autoencoder=ae))


def _latent_level(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 2:
        raise UsageError(f"--levels: latent sizes are integers >= 2, not {text!r}")
    return value


FACTORS = {
    f.name: f
    for f in (
        Factor(
            "freeze",
            "does letting the classifier's error reach the encoder matter?",
            lambda m: isinstance(m, ClassifierConfig),
            lambda m: m.freeze,
            lambda m: FREEZE_CHOICES,
            _freeze,
        ),
        Factor(
            "fc-bottleneck",
            "does a conv autoencoder gain from an FC bottleneck?",
            lambda m: _is_conv(m) and not _is_vae(m),  # a VAE's latent is its FC layer
            lambda m: "on" if autoencoder(m).fc_latent is not None else "off",
            lambda m: ("on", "off"),
            _fc,
        ),
        Factor(
            "latent",
            "what does each latent dimension buy?",
            _can_set_latent,
            lambda m: autoencoder(m).latent_dim,
            lambda m: tuple(sorted({*LATENTS, autoencoder(m).latent_dim})),
            _latent,
            _latent_level,
        ),
        Factor(
            "arch",
            "MLP or conv encoder, at the same latent size?",
            lambda m: True,
            _arch_of,
            lambda m: ("mlp", "conv"),
            _arch,
        ),
        Factor(
            "family",
            "an autoencoder or a VAE as the classifier's encoder?",
            lambda m: isinstance(m, ClassifierConfig),
            _family_of,
            lambda m: ("ae", "vae"),
            _family,
        ),
    )
}

CHOICES = {
    "freeze": FREEZE_CHOICES,
    "fc-bottleneck": ("on", "off"),
    "arch": ("mlp", "conv"),
    "family": ("ae", "vae"),
}


def factor(name: str, model) -> Factor:
    """The factor ``name``, checked to apply to ``model``."""
    if name not in FACTORS:
        raise UsageError(f"unknown --factor {name!r}; choose one of {sorted(FACTORS)}")
    f = FACTORS[name]
    if not f.applies(model):
        fit = [n for n, g in FACTORS.items() if g.applies(model)]
        raise UsageError(
            f"--factor {name} does not apply to this trial's {model.family} model; "
            f"factors that do: {', '.join(fit)}"
        )
    return f


def levels(f: Factor, model, text: str | None) -> list:
    """The levels to run: ``--levels`` (checked) or the factor's defaults; the trial's own
    level always among them (the differences are taken against it)."""
    if text is None:
        chosen = list(f.default_levels(model))
    else:
        chosen = [f.parse(t.strip()) for t in text.split(",") if t.strip()]
        allowed = CHOICES.get(f.name)
        bad = [lv for lv in chosen if allowed is not None and lv not in allowed]
        if bad or not chosen:
            what = ", ".join(allowed) if allowed else "integers >= 2, e.g. 2,4,8,16"
            raise UsageError(f"--levels {text!r}: the levels of {f.name} are {what}")
    own = f.level_of(model)
    if own not in chosen:
        chosen.insert(0, own)
    return list(dict.fromkeys(chosen))


def vary(f: Factor, spec: TrialSpec, level) -> TrialSpec:
    """``spec`` with factor ``f`` at ``level``, everything else as it was."""
    return replace(spec, model=f.apply(spec.model, level))
