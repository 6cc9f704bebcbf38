import math

import pytest
import torch

import models as m

CPU = torch.device("cpu")
FAST = m.TrainConfig(lr=2e-3, batch_size=64, epochs=3)


def _weights(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize(
    "config",
    [
        m.MLPAEConfig(hidden=(64,), latent_dim=8),
        m.ConvAEConfig(channels=(8, 16), fc_latent=8),
        m.VAEConfig.mlp(hidden=(64,), latent_dim=8),
        m.ClassifierConfig(
            encoder=m.MLPAEConfig(hidden=(64,), latent_dim=8),
            head=(32,),
            freeze="scratch",
            pretrain_epochs=0,
        ),
    ],
    ids=lambda c: c.family,
)
def test_a_few_epochs_lower_the_loss_on_real_data(config, small):
    train, val = small
    history = m.fit(config, FAST, train, val, device=CPU, seed=0).history
    assert history[-1].train["loss"] < history[0].train["loss"]
    assert history[-1].val["loss"] < history[0].val["loss"]


def test_frozen_encoder_weights_are_bit_identical_after_classifier_training(small):
    train, val = small
    config = m.ClassifierConfig(
        encoder=m.ConvAEConfig(channels=(4, 8), fc_latent=6, batch_norm=True),
        head=(16,),
        freeze="frozen",
        pretrain_epochs=1,
    )
    seen = {}

    def grab(result):
        if result.phase == "pretrain":
            seen["encoder"] = _weights(result.model.autoencoder)
            seen["head"] = _weights(result.model.head)

    model = m.fit(
        config, m.TrainConfig(epochs=2, batch_size=64), train, val, device=CPU, on_epoch=grab
    ).model
    after = _weights(model.autoencoder)
    assert all(torch.equal(seen["encoder"][k], after[k]) for k in after)  # BN stats too
    assert any(not torch.equal(seen["head"][k], v) for k, v in _weights(model.head).items())


def test_frozen_encoder_receives_no_gradient():
    config = m.ClassifierConfig(encoder=m.MLPAEConfig(hidden=(16,), latent_dim=4), head=(8,))
    model = m.build_model(config)
    model.freeze_encoder()
    loss = model(torch.rand(4, 1, 28, 28)).sum()
    loss.backward()
    assert all(p.grad is None for p in model.autoencoder.parameters())
    assert all(p.grad is not None for p in model.head.parameters())


@pytest.mark.parametrize("freeze", ["finetune", "joint", "scratch"])
def test_unfrozen_choices_change_the_encoder(freeze, small):
    train, val = small
    config = m.ClassifierConfig(
        encoder=m.MLPAEConfig(hidden=(16,), latent_dim=4),
        head=(),
        freeze=freeze,
        pretrain_epochs=1 if freeze == "finetune" else 0,
    )
    seen = {}

    def grab(result):
        if "encoder" not in seen or result.phase == "pretrain":
            seen["encoder"] = _weights(result.model.autoencoder.encoder)

    model = m.fit(
        config, m.TrainConfig(epochs=2, batch_size=64), train, val, device=CPU, on_epoch=grab
    ).model
    after = _weights(model.autoencoder.encoder)
    assert any(not torch.equal(seen["encoder"][k], v) for k, v in after.items())


def test_joint_reports_reconstruction_and_accuracy(small):
    train, val = small
    config = m.ClassifierConfig(
        encoder=m.VAEConfig.mlp(hidden=(16,), latent_dim=4),
        head=(),
        freeze="joint",
        pretrain_epochs=0,
        recon_weight=0.5,
    )
    last = m.fit(config, m.TrainConfig(epochs=1), train, val, device=CPU).last
    assert set(last.val) == {"loss", "ce", "acc", "recon"}
    assert 0.0 <= last.val["acc"] <= 1.0
    assert math.isclose(last.val["loss"], last.val["ce"] + 0.5 * last.val["recon"], rel_tol=1e-4)


def test_vae_reports_reconstruction_and_kl_separately(small):
    train, val = small
    config = m.VAEConfig.mlp(hidden=(32,), latent_dim=4, beta=2.0)
    last = m.fit(config, m.TrainConfig(epochs=1), train, val, device=CPU).last
    assert last.val["kl"] > 0
    assert math.isclose(last.val["loss"], last.val["recon"] + 2.0 * last.val["kl"], rel_tol=1e-4)
    assert math.isclose(last.val["nelbo"], last.val["recon"] + last.val["kl"], rel_tol=1e-4)


def test_training_is_reproducible_on_cpu(small):
    train, val = small
    config = m.VAEConfig.conv(channels=(4, 8), latent_dim=4)
    a = m.fit(config, m.TrainConfig(epochs=1), train, val, device=CPU, seed=3).last.val
    b = m.fit(config, m.TrainConfig(epochs=1), train, val, device=CPU, seed=3).last.val
    c = m.fit(config, m.TrainConfig(epochs=1), train, val, device=CPU, seed=4).last.val
    assert a == b
    assert a != c


def test_a_diverging_loss_stops_with_a_clear_reason(small):
    train, val = small
    # A linear model with a far too large SGD step diverges within one epoch.
    config = m.MLPAEConfig(
        hidden=(32,), latent_dim=4, activation="identity", output_activation="identity"
    )
    with pytest.raises(m.NonFiniteLossError, match=r"non-finite .*lr=5"):
        m.fit(config, m.TrainConfig(optimizer="sgd", lr=5.0, epochs=3), train, val, device=CPU)


@pytest.mark.parametrize(
    "config",
    [
        m.VAEConfig.mlp(hidden=(256, 128), latent_dim=16),
        m.ClassifierConfig(
            encoder=m.VAEConfig.mlp(hidden=(64,), latent_dim=8),
            head=(32,),
            freeze="finetune",
            pretrain_epochs=2,
        ),
    ],
    ids=["vae", "classifier-on-a-vae"],
)
def test_sgd_at_the_top_of_the_searched_range_trains_a_vae_without_diverging(config, small):
    """The search's SGD learning rates reach 0.03. A VAE's loss is summed over 784 pixels
    per image; minimised as that sum, SGD diverged at 0.01 (NaN in the first epoch)."""
    train, val = small
    sgd = m.TrainConfig(optimizer="sgd", lr=0.03, batch_size=64, epochs=3)
    history = m.fit(config, sgd, train, val, device=CPU, seed=0).history
    assert all(math.isfinite(h.train["loss"]) for h in history)
    reconstruction = [h.train["loss"] for h in history if h.phase == history[0].phase]
    assert len(reconstruction) >= 2 and reconstruction[-1] < reconstruction[0]


def test_callback_can_stop_training(small):
    train, val = small
    epochs = []

    class Stop(Exception):
        pass

    def on_epoch(result):
        epochs.append(result.epoch)
        raise Stop

    with pytest.raises(Stop):
        m.fit(
            m.MLPAEConfig(hidden=(8,), latent_dim=2),
            m.TrainConfig(epochs=5),
            train,
            val,
            device=CPU,
            on_epoch=on_epoch,
        )
    assert epochs == [1]


def test_device_resolution():
    assert m.resolve_device("cpu").type == "cpu"
    assert m.resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(m.ConfigError, match="'tpu'"):
        m.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(m.ConfigError, match="CUDA is not available"):
            m.resolve_device("cuda")


@pytest.mark.parametrize(
    "config, stop_after",
    [
        (m.VAEConfig.conv(channels=(4, 8), latent_dim=4, batch_norm=True), 2),
        (
            m.ClassifierConfig(
                encoder=m.MLPAEConfig(hidden=(16,), latent_dim=4),
                head=(8,),
                freeze="frozen",
                pretrain_epochs=2,
            ),
            2,
        ),  # between the phases
        (
            m.ClassifierConfig(
                encoder=m.MLPAEConfig(hidden=(16,), latent_dim=4),
                head=(8,),
                freeze="finetune",
                pretrain_epochs=1,
            ),
            3,
        ),  # inside "train"
    ],
    ids=["vae", "frozen-between-phases", "finetune-mid-train"],
)
def test_resuming_from_a_snapshot_matches_an_uninterrupted_run(config, stop_after, small, tmp_path):
    import io

    train, val = small
    cfg = m.TrainConfig(epochs=3, batch_size=64)
    whole = m.fit(config, cfg, train, val, device=CPU, seed=5)

    class Crash(Exception):
        pass

    saved = []

    def crash(result):  # "dies" after the stop_after-th epoch, counting both phases
        buf = io.BytesIO()
        torch.save(result.snapshot(), buf)
        saved.append(buf.getvalue())
        if len(saved) == stop_after:
            raise Crash

    with pytest.raises(Crash):
        m.fit(config, cfg, train, val, device=CPU, seed=5, on_epoch=crash)
    state = torch.load(io.BytesIO(saved[-1]), weights_only=False)
    resumed = m.fit(config, cfg, train, val, device=CPU, seed=5, resume=state)

    def without_time(history):
        return [{**h.record(), "seconds": None, "eval_seconds": None} for h in history]

    assert len(resumed.history) == len(whole.history)
    assert without_time(resumed.history) == without_time(whole.history)
    for k, v in whole.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_compiled_engine_trains_the_same_model(small):
    train, val = small
    config = m.MLPAEConfig(hidden=(16,), latent_dim=4)
    cfg = m.TrainConfig(epochs=1, batch_size=100)
    plain = m.fit(config, cfg, train, val, device=CPU, seed=2).last.val
    compiled = m.fit(config, cfg, train, val, device=CPU, seed=2, compile=True).last.val
    assert compiled["mse"] == pytest.approx(plain["mse"], rel=1e-3)


def test_conv_models_are_channels_last():
    model = m.prepare_model(m.build_model(m.ConvAEConfig(channels=(4, 8))), CPU)
    conv = model.encoder[0][0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    out = model(torch.rand(2, 1, 28, 28))
    assert out.shape == (2, 1, 28, 28)


def test_vae_evaluation_is_the_elbo_at_a_posterior_sample_and_repeatable(small):
    import torch.nn.functional as F

    train, val = small
    val = val.head(256)
    config = m.VAEConfig.mlp(hidden=(32,), latent_dim=4)
    model = m.fit(config, m.TrainConfig(epochs=1), train, val, device=CPU).model
    task = m.task_for(config)
    rng = torch.get_rng_state()
    first = m.evaluate(model, task, val, device=CPU, batch_size=len(val))
    assert m.evaluate(model, task, val, device=CPU, batch_size=len(val)) == first
    assert torch.equal(torch.get_rng_state(), rng)  # training's random stream untouched
    # The same single-sample estimate by hand: z ~ q(z|x), summed BCE + KL per image.
    x = val.images.float() / 255
    with torch.no_grad():
        mu, logvar = model.encode_stats(x)
        eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(0))
        z = mu + eps * torch.exp(0.5 * logvar)
        bce = F.binary_cross_entropy_with_logits(model.decode_logits(z), x, reduction="none")
        kl = -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(1)
        by_hand = (bce.flatten(1).sum(1) + kl).mean().item()
        at_mean = F.binary_cross_entropy_with_logits(model.decode_logits(mu), x, reduction="none")
        optimistic = (at_mean.flatten(1).sum(1) + kl).mean().item()
    assert first["nelbo"] == pytest.approx(by_hand, rel=1e-5)
    assert optimistic < first["nelbo"]  # decoding the mean would flatter the model


def _flushing() -> bool:
    return float(torch.tensor([1e-39]) * 2) == 0.0


def test_flushing_subnormals_leaves_adams_averages_clean_and_the_weights_unchanged(fmnist):
    # Adam's averages of rarely-used weights decay by 0.9 a step into the subnormal range,
    # where x86 arithmetic crawls; flushed, they become 0 and the weights stay bit-identical.
    # One thread, so that the mode (per thread) covers every operation of the test.
    was, threads = _flushing(), torch.get_num_threads()
    config = m.MLPAEConfig(hidden=(32,), latent_dim=3)
    results = {}
    torch.set_num_threads(1)
    try:
        for flush in (False, True):
            torch.set_flush_denormal(False)
            if flush:
                assert m.flush_denormals() and _flushing()
            torch.manual_seed(0)
            model = m.build_model(config)
            opt = m.make_optimizer(model.parameters(), m.TrainConfig(batch_size=8), CPU)
            gen = torch.Generator().manual_seed(0)
            for _ in range(8):  # 1,000 steps
                m.train_epoch(model, m.task_for(config), fmnist.train.head(1000), opt,
                              batch_size=8, device=CPU, generator=gen)  # fmt: skip
            tiny = torch.finfo(torch.float32).tiny
            averages = torch.cat([s["exp_avg"].flatten() for s in opt.state.values()])
            subnormal = int(((averages != 0) & (averages.abs() < tiny)).sum())
            results[flush] = (_weights(model), subnormal)
    finally:
        torch.set_flush_denormal(was)
        torch.set_num_threads(threads)
    assert results[False][1] > 0  # the slow case is really there without flushing
    assert results[True][1] == 0
    kept, flushed = results[False][0], results[True][0]
    assert all(torch.equal(kept[k], flushed[k]) for k in kept)


@pytest.mark.parametrize(
    "config",
    [
        m.MLPAEConfig(hidden=(32,), latent_dim=4),
        m.ConvAEConfig(channels=(4, 8), downsample="maxpool", batch_norm=True),
        m.VAEConfig.mlp(hidden=(32,), latent_dim=3),
        m.ClassifierConfig(
            encoder=m.VAEConfig.mlp(hidden=(32,), latent_dim=5),
            head=(16,),
            freeze="joint",
            pretrain_epochs=1,
        ),
        m.ClassifierConfig(
            encoder=m.ConvAEConfig(channels=(4, 8), fc_latent=6),
            head=(16,),
            freeze="frozen",
            pretrain_epochs=1,
        ),
    ],
    ids=["mlp_ae", "conv_ae_no_bottleneck", "vae", "joint_vae_classifier", "frozen_conv"],
)
def test_kept_codes_are_what_encode_gives_the_first_validation_images(config, small):
    train, val = small
    cfg = m.TrainConfig(epochs=2, batch_size=128)
    seen = []

    def check(result):  # the model as this epoch's evaluation saw it
        result.model.eval()
        with torch.inference_mode():
            z = result.model.encode(val.head(300).batch(slice(0, 300))[0]).flatten(1)
        seen.append(result.codes is not None and torch.allclose(result.codes, z, atol=1e-5))

    fitted = m.fit(config, cfg, train, val, device=CPU, seed=0, on_epoch=check, keep_codes=300)
    assert seen and all(seen)
    assert [h.codes is not None for h in fitted.history] == [False] * (len(seen) - 1) + [True]
    assert fitted.model.code_layer._forward_hooks == {}  # nothing left on the saved model
    plain = m.fit(config, cfg, train, val, device=CPU, seed=0)
    assert all(  # keeping codes changes no arithmetic
        torch.equal(a, b)
        for a, b in zip(
            fitted.model.state_dict().values(), plain.model.state_dict().values(), strict=True
        )
    )
    assert [h.val for h in fitted.history] == [h.val for h in plain.history]


def test_more_codes_than_validation_images_keeps_them_all(small):
    train, val = small
    fitted = m.fit(
        m.MLPAEConfig(hidden=(16,), latent_dim=2), m.TrainConfig(epochs=1), train, val.head(70),
        device=CPU, keep_codes=1500,
    )  # fmt: skip
    assert fitted.history[-1].codes.shape == (70, 2)


@pytest.mark.parametrize(
    "config",
    [m.ConvAEConfig(channels=(8, 16), fc_latent=8), m.VAEConfig.mlp(hidden=(64,), latent_dim=8)],
    ids=lambda c: c.family,
)
def test_evaluation_on_a_cpu_is_in_small_batches_and_leaves_training_bit_identical(
    config, small, monkeypatch
):
    """Small evaluation batches keep a conv layer's activations in the CPU's caches (twice as
    fast for conv models: benchmark 1); training is the same to the bit, the validation
    metrics to the last bits of their sums."""
    from models import _engine

    train, val = small
    sizes = []
    evaluate = _engine.evaluate

    def watched(*args, batch_size, **kwargs):
        sizes.append(batch_size)
        return evaluate(*args, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(_engine, "evaluate", watched)
    small_batches = m.fit(config, FAST, train, val, device=CPU, seed=0)
    assert sizes == [128] * 3
    monkeypatch.setattr(_engine, "CPU_EVAL_BATCH", 2048)
    one_batch = m.fit(config, FAST, train, val, device=CPU, seed=0)
    assert sizes[3:] == [2048] * 3
    a, b = small_batches.model.state_dict(), one_batch.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    for h1, h2 in zip(small_batches.history, one_batch.history, strict=True):
        assert h1.train == h2.train
        assert h1.val == pytest.approx(h2.val, rel=1e-5)
    assert m.eval_batch_size(torch.device("cuda"), 64) == 2048
    assert m.eval_batch_size(torch.device("cuda"), 1024) == 4096
