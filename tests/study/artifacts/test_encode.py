"""The trained encoder as a feature extractor: API, ``study.encode`` and the exported program."""

import csv
import json
import re
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

import models as m
from objectives import TrialSpec
from study import encode, export
from study.artifacts import checkpoint
from study.encode import EncodeError, Encoder

from ..helpers import artifacts, load

CPU = torch.device("cpu")
TRAIN = m.TrainConfig(lr=2e-3, batch_size=64, epochs=1)
FAMILIES = [
    ("ae", m.MLPAEConfig(hidden=(64,), latent_dim=6)),
    ("ae", m.ConvAEConfig(channels=(4, 8), fc_latent=5, batch_norm=True)),
    ("ae", m.ConvAEConfig(channels=(4, 8), code_channels=2)),
    ("vae", m.VAEConfig.mlp(hidden=(64,), latent_dim=4)),
    ("vae", m.VAEConfig.conv(channels=(4, 8), latent_dim=3)),
    (
        "classifier",
        m.ClassifierConfig(
            encoder=m.MLPAEConfig(hidden=(32,), latent_dim=7),
            head=(16,),
            freeze="frozen",
            pretrain_epochs=1,
        ),
    ),
]


def saved_encoder(tmp_path, objective, config) -> Encoder:
    """Build, save as a checkpoint, load back through the public API."""
    model = m.build_model(config)
    path = checkpoint.save(model, TrialSpec(objective, config, TRAIN), tmp_path / "model.pt")
    return Encoder.load(path)


@pytest.mark.parametrize(
    "objective, config",
    FAMILIES,
    ids=[f"{o}-{c.to_dict().get('encoder', '')}" for o, c in FAMILIES],
)
def test_each_family_encodes_to_its_latent_size_and_decodes_to_images(
    tmp_path, fmnist, objective, config
):
    enc = saved_encoder(tmp_path, objective, config)
    images = fmnist.val.images[:10]  # uint8 [10, 1, 28, 28]
    z = enc.encode(images)
    assert enc.latent_dim == config.latent_dim
    assert z.shape == (10, config.latent_dim) and z.dtype == torch.float32
    x = enc.decode(z)
    assert x.shape == images.shape
    assert x.min() >= 0 and x.max() <= 1
    # numpy in, numpy out; [N, 28, 28] and float [0, 1] give the same latents.
    z_np = enc.encode(images[:, 0].numpy())
    assert isinstance(z_np, np.ndarray)
    np.testing.assert_allclose(z_np, z.numpy(), atol=1e-6)
    torch.testing.assert_close(enc.encode(images.float() / 255), z)
    pil = [Image.fromarray(i[0].numpy(), mode="L") for i in images]
    np.testing.assert_allclose(enc.encode(pil), z.numpy(), atol=1e-6)


def test_vae_encodes_the_mean_or_a_repeatable_sample(tmp_path, fmnist):
    enc = saved_encoder(tmp_path, "vae", m.VAEConfig.mlp(hidden=(32,), latent_dim=4))
    x = fmnist.val.images[:8]
    mean = enc.encode(x)
    torch.testing.assert_close(mean, enc.model.encode_stats(x.float() / 255)[0])
    a = enc.encode(x, sample=True, seed=1)
    assert not torch.allclose(a, mean)
    torch.testing.assert_close(a, enc.encode(x, sample=True, seed=1))


def test_frozen_classifier_encodes_like_the_autoencoder_it_came_from(small):
    train, val = small
    config = m.ClassifierConfig(
        encoder=m.ConvAEConfig(channels=(4, 8), fc_latent=6, batch_norm=True),
        head=(16,),
        freeze="frozen",
        pretrain_epochs=1,
    )
    pretrained = {}

    def keep(result):
        if result.phase == "pretrain":
            pretrained.update(
                {k: v.clone() for k, v in result.model.autoencoder.state_dict().items()}
            )

    fitted = m.fit(
        config,
        m.TrainConfig(lr=2e-3, batch_size=64, epochs=2),
        train,
        val,
        device=CPU,
        on_epoch=keep,
    )
    clf = Encoder(fitted.model, TrialSpec("classifier", config, TRAIN), source="memory")
    ae_model = m.build_model(config.encoder)
    ae_model.load_state_dict(pretrained)
    ae = Encoder(ae_model, TrialSpec("ae", config.encoder, TRAIN), source="memory")
    x = val.images[:64]
    # Same weights bit for bit; the trained copy runs channels-last, so the latents agree to
    # float rounding rather than bit for bit.
    for k, v in fitted.model.autoencoder.state_dict().items():
        assert torch.equal(v, pretrained[k]), k
    torch.testing.assert_close(clf.encode(x), ae.encode(x), rtol=1e-5, atol=1e-6)
    assert clf.predict(x).shape == (64,)


@pytest.mark.parametrize(
    "images, fragment",
    [
        (torch.zeros(2, 3, 28, 28, dtype=torch.uint8), "one channel"),
        (torch.zeros(2, 32, 32, dtype=torch.uint8), "[2, 32, 32]"),
        (torch.full((2, 28, 28), 255.0), "scale them to [0, 1]"),
        (torch.zeros(2, 28, 28, dtype=torch.int32), "dtype torch.int32"),
    ],
)
def test_bad_images_are_refused_with_the_reason(tmp_path, images, fragment):
    enc = saved_encoder(tmp_path, "ae", m.MLPAEConfig(hidden=(), latent_dim=3))
    with pytest.raises(EncodeError) as err:
        enc.encode(images)
    assert fragment in str(err.value)


def test_scratch_classifier_has_no_decoder(tmp_path):
    config = m.ClassifierConfig(
        encoder=m.MLPAEConfig(hidden=(), latent_dim=3), freeze="scratch", pretrain_epochs=0
    )
    enc = saved_encoder(tmp_path, "classifier", config)
    assert not enc.can_decode
    with pytest.raises(EncodeError, match="no decoder"):
        enc.decode(torch.zeros(1, 3))


# -- the study's best encoder, exported --------------------------------------------------------
def best_run(path):
    study, client, parents, _ = load(path)
    return study, client, parents[0], study.best_trial.user_attrs["mlflow_run_id"]


LOADER = textwrap.dedent(
    """
    import sys
    for name in ("study", "models", "objectives"):
        sys.modules[name] = None  # importing the harness now fails
    import numpy as np, torch
    program = torch.export.load(sys.argv[1]).module()
    x = torch.from_numpy(np.load(sys.argv[2]))
    np.save(sys.argv[3], program(x).detach().numpy())
    """
)


def test_the_study_logs_the_best_encoder_and_it_loads_without_the_harness(
    classifier_study, fmnist, tmp_path
):
    study, client, parent, run_id = best_run(classifier_study)
    assert artifacts(client, run_id, "encoder") == ["encoder/encoder.json", "encoder/encoder.pt2"]
    assert parent.data.tags["best_encoder_uri"] == f"runs:/{run_id}/encoder/encoder.pt2"
    local = client.download_artifacts(run_id, "encoder", str(tmp_path))
    meta = json.loads((tmp_path / "encoder" / "encoder.json").read_text())
    assert meta["spec"] == study.best_trial.user_attrs["spec"]
    x = (fmnist.test.images[:33].float() / 255).numpy()
    np.save(tmp_path / "x.npy", x)
    subprocess.run(
        [
            sys.executable,
            "-c",
            LOADER,
            f"{local}/encoder.pt2",
            tmp_path / "x.npy",
            tmp_path / "z.npy",
        ],
        check=True,
        cwd=tmp_path,
    )
    exported = np.load(tmp_path / "z.npy")
    expected = Encoder.from_run(
        run_id, tracking_uri=f"sqlite:///{classifier_study}/mlflow.db"
    ).encode(x)
    assert exported.shape == expected.shape == (33, meta["latent_dim"])
    np.testing.assert_allclose(exported, expected, rtol=1e-5, atol=1e-5)


def test_a_logged_checkpoint_is_loaded_without_leaving_its_download_behind(
    classifier_study, tmp_path, monkeypatch
):
    _, _, _, run_id = best_run(classifier_study)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where mkdtemp puts downloads
    uri = f"runs:/{run_id}/checkpoint/model.pt"
    model, spec = checkpoint.load(uri, tracking_uri=f"sqlite:///{classifier_study}/mlflow.db")
    assert spec.objective == "classifier" and sum(p.numel() for p in model.parameters()) > 0
    assert [p.name for p in scratch.iterdir() if p.name.startswith("ckpt-")] == []


# -- python -m study.encode -------------------------------------------------------------------
def test_encode_a_split_to_npz_and_csv(classifier_study, fmnist, tmp_path, capsys):
    _, _, _, run_id = best_run(classifier_study)
    uri = f"sqlite:///{classifier_study}/mlflow.db"
    out, table = tmp_path / "z.npz", tmp_path / "z.csv"
    args = ["--run", run_id, "--tracking-uri", uri, "--split", "val", "--limit", "40"]
    assert encode.main([*args, "--out", str(out), "--csv", str(table)]) == 0
    saved = np.load(out)
    enc = Encoder.from_run(run_id, tracking_uri=uri)
    assert saved["latents"].shape == (40, enc.latent_dim)
    np.testing.assert_array_equal(saved["labels"], fmnist.val.labels[:40].numpy())
    # The command runs on a GPU where there is one (--device auto), the Encoder on the CPU.
    latents = enc.encode(fmnist.val.images[:40]).numpy()
    np.testing.assert_allclose(saved["latents"], latents, rtol=1e-5, atol=1e-6)
    rows = list(csv.reader(table.open()))
    assert rows[0][:3] == ["index", "label", "z0"] and len(rows) == 41
    assert [int(r[1]) for r in rows[1:]] == fmnist.val.labels[:40].tolist()
    assert "40 images" in capsys.readouterr().out


def test_encode_from_an_exported_config_and_a_png_folder(classifier_study, fmnist, tmp_path):
    uri = f"sqlite:///{classifier_study}/mlflow.db"
    config = tmp_path / "best.yaml"
    argv = ["--storage", f"sqlite:///{classifier_study}/optuna.db", "--tracking-uri", uri]
    assert export.main([*argv, "--out", str(config)]) == 0
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(fmnist.test.images[i, 0].numpy(), mode="L").save(folder / f"img{i}.png")
    out = tmp_path / "pngs.npz"
    pt2 = tmp_path / "enc.pt2"
    assert (
        encode.main(
            ["--config", str(config), "--images", str(folder), "--out", str(out)]
            + ["--export-encoder", str(pt2)]
        )
        == 0
    )
    saved = np.load(out)
    assert saved["files"].tolist() == [f"img{i}.png" for i in range(5)]
    expected = Encoder.load(config).encode(fmnist.test.images[:5])
    np.testing.assert_allclose(saved["latents"], expected.numpy(), rtol=1e-5, atol=1e-6)  # GPU
    program = torch.export.load(pt2).module()
    torch.testing.assert_close(program(fmnist.test.images[:5].float() / 255), expected)


def png(folder, name, array, mode):
    folder.mkdir(exist_ok=True)
    Image.fromarray(array, mode=mode).save(folder / name)


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("big", "is 32x32; every image must be 28x28"),
        ("rgb", "has 3 channel(s) (mode RGB)"),
        ("empty", "holds no .png files"),
        ("parent-run", "has no checkpoint/model.pt"),
        ("not-a-run-id", "is not an MLflow run id"),
        ("missing-checkpoint", "does not exist"),
        ("bad-out", "must end in .npz"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(classifier_study, tmp_path, capsys, case, fragment):
    _, _, parent, run_id = best_run(classifier_study)
    uri = f"sqlite:///{classifier_study}/mlflow.db"
    folder = tmp_path / "imgs"
    source = ["--run", run_id, "--tracking-uri", uri]
    extra = ["--images", str(folder)]
    if case == "big":
        png(folder, "a.png", np.zeros((32, 32), np.uint8), "L")
    elif case == "rgb":
        png(folder, "a.png", np.zeros((28, 28, 3), np.uint8), "RGB")
    elif case == "empty":
        folder.mkdir()
    elif case == "parent-run":
        source, extra = ["--run", parent.info.run_id, "--tracking-uri", uri], []
    elif case == "not-a-run-id":
        source, extra = ["--run", "trial-3"], []
    elif case == "missing-checkpoint":
        source, extra = ["--checkpoint", str(tmp_path / "nope.pt")], []
    elif case == "bad-out":
        extra = ["--out", str(tmp_path / "z.txt")]
    before = sorted(p.name for p in classifier_study.iterdir())
    assert (
        encode.main(
            [*source, *extra, "--limit", "5", "--out", str(tmp_path / "z.npz")]
            if case != "bad-out"
            else [*source, *extra]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert fragment in err
    assert not (tmp_path / "z.npz").exists()
    assert sorted(p.name for p in classifier_study.iterdir()) == before


def test_the_best_encoder_is_registered_and_loads_by_alias(classifier_study, capsys):
    from mlflow import MlflowClient

    uri = f"sqlite:///{classifier_study}/mlflow.db"
    study, *_ = load(classifier_study)
    best_run = study.best_trial.user_attrs["mlflow_run_id"]
    client = MlflowClient(tracking_uri=uri)
    for name in ("classifier-fashion-mnist-encoder", "classifier-fashion-mnist-classifier"):
        version = client.get_model_version_by_alias(name, "best")
        assert version.run_id == best_run
    enc = Encoder.load("models:/classifier-fashion-mnist-encoder@best", tracking_uri=uri)
    direct = Encoder.from_run(best_run, tracking_uri=uri)
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(enc.encode(x), direct.encode(x))


@pytest.mark.parametrize(
    "source, needle",
    [
        ("models:/nope@best", "no registered model 'models:/nope@best'"),
        ("models:/classifier-fashion-mnist-encoder@worst", "@worst"),
        ("models:/classifier-fashion-mnist-encoder", "names no version"),
    ],
)
def test_a_registered_model_that_is_not_there_is_one_line(classifier_study, capsys, source, needle):
    uri = f"sqlite:///{classifier_study}/mlflow.db"
    with pytest.raises(EncodeError, match=re.escape(needle)):
        Encoder.load(source, tracking_uri=uri)
    argv = ["--model", source, "--tracking-uri", uri, "--limit", "5", "--out", "/tmp/never.npz"]
    assert encode.main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]


def test_an_unreachable_registry_is_a_clear_error():
    with pytest.raises(EncodeError, match="no registered model .* http://127.0.0.1:9"):
        Encoder.load("models:/x@best", tracking_uri="http://127.0.0.1:9")


def test_registered_models_load_with_mlflow_alone(classifier_study):
    """mlflow.pytorch.load_model in a fresh interpreter that cannot import this project."""
    code = textwrap.dedent(
        f"""
        import sys
        for m in ("study", "models", "objectives"):
            sys.modules[m] = None
        import mlflow, torch
        mlflow.set_tracking_uri("sqlite:///{classifier_study}/mlflow.db")
        enc = mlflow.pytorch.load_model("models:/classifier-fashion-mnist-encoder@best")
        clf = mlflow.pytorch.load_model("models:/classifier-fashion-mnist-classifier@best")
        x = torch.rand(3, 1, 28, 28)
        print(tuple(enc(x).shape)[0], tuple(clf(x).shape))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-3:] == ["3", "(3,", "10)"]


def test_the_alias_moves_when_another_trial_becomes_the_best(study_copy):
    from mlflow import MlflowClient

    from study.tracking.registry import register_best

    uri = f"sqlite:///{study_copy}/mlflow.db"
    study, client, *_ = load(study_copy)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(study.study_name).experiment_id
    name = f"{study.study_name}-encoder"
    best = study.best_trial
    before = client.get_model_version_by_alias(name, "best")
    assert register_best(client, exp, study.study_name, best, tracking_uri=uri)[name] == (
        before.version
    )  # the same best: nothing new
    other = next(t for t in study.trials if t.state.name == "COMPLETE" and t != best)
    moved = register_best(client, exp, study.study_name, other, tracking_uri=uri)[name]
    now = client.get_model_version_by_alias(name, "best")
    assert now.version == moved != before.version
    assert now.run_id == other.user_attrs["mlflow_run_id"]
    assert now.tags["optuna.trial_number"] == str(other.number)


def test_logging_a_model_leaves_the_callers_model_where_and_as_it_was(tmp_path):
    """A GPU trial's pictures are drawn after its logged model is written, from the same
    model: logging once moved it to the CPU in place and every picture failed. A float64
    model shows the same in-place change on a machine without a GPU."""
    from mlflow import MlflowClient

    from models import MLPAEConfig, build_model
    from study.tracking.registry import log_model

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.create_experiment("e", artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(experiment)
    model = build_model(MLPAEConfig(hidden=(8,), latent_dim=2)).double().train()
    example = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    log_model(client, experiment, run.info.run_id, model, example, view="encode",
              portable=False, metadata={})  # fmt: skip
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert model.training
    with torch.no_grad():
        assert model.encode(example).dtype == torch.float64


def test_logging_models_skips_mlflows_scan_of_every_installed_package(tmp_path):
    """MLflow's requirements check maps every installed package's files on its first call
    (~1.7 s a process, paid by each worker's first completed trial); the harness's models
    pin the installed torch and MLflow, so it is skipped, and the pins are still written."""
    code = textwrap.dedent(
        f"""
        import torch
        from mlflow import MlflowClient
        from mlflow.utils import environment, requirements_utils
        from models import MLPAEConfig, build_model
        from study.tracking.registry import log_model, pip_requirements

        check = environment.warn_dependency_requirement_mismatches
        client = MlflowClient(tracking_uri="sqlite:///{tmp_path}/mlflow.db")
        experiment = client.create_experiment("e", artifact_location="{tmp_path}/artifacts")
        run = client.create_run(experiment).info.run_id
        model = build_model(MLPAEConfig(hidden=(8,), latent_dim=2))
        x = torch.rand(2, 1, 28, 28)
        for portable in (False, True):
            log_model(client, experiment, run, model, x, view="encode", portable=portable,
                      metadata={{}})
        assert requirements_utils._MODULES_TO_PACKAGES is None  # never scanned
        assert environment.warn_dependency_requirement_mismatches is check  # put back
        print(*pip_requirements())
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    pins = out.stdout.split()[-2:]
    assert [p.split("==")[0] for p in pins] == ["torch", "mlflow"]
    written = sorted((tmp_path / "artifacts").rglob("requirements.txt"))
    assert len(written) == 2
    for path in written:
        assert path.read_text().split() == pins
