"""A whole study on a real CUDA device, and its results used on a machine without one. CI has
no GPU: these run on a GPU machine (tests/models/test_cuda.py says how)."""

import pytest
import torch
import yaml

from study import export, train
from study.artifacts import checkpoint

from ..conftest import run_study, stores
from ..helpers import artifacts, load

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (CI has none: run on a GPU machine)"
)


def test_a_study_trains_on_the_gpu_and_its_best_model_retrains_and_loads_on_the_cpu(
    tmp_path, capsys
):
    assert run_study(tmp_path, "--trials", "3", "--device", "cuda", "--pruner", "none") == 0
    study, client, _, trials = load(tmp_path)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    for t in study.trials:
        cost = t.user_attrs["cost"]
        assert cost["memory_kind"] == "cuda allocated" and cost["peak_memory_mb"] > 0
    for r in trials:  # written by the background writer (--records auto on a GPU), all there
        assert artifacts(client, r.info.run_id, "checkpoint") == ["checkpoint/model.pt"]
        assert "pictures/latent.png" in artifacts(client, r.info.run_id, "pictures")
        assert not [k for k in r.data.tags if k.endswith("_error")], r.data.tags

    # The checkpoint was saved from the GPU; it loads on the CPU.
    run_id = study.best_trial.user_attrs["mlflow_run_id"]
    model, spec = checkpoint.load(
        f"runs:/{run_id}/checkpoint/model.pt",
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        device="cpu",
    )
    assert all(not p.is_cuda for p in model.parameters())
    with torch.no_grad():
        assert model(torch.rand(4, 1, 28, 28)).shape[0] == 4

    out = tmp_path / "best.yaml"
    assert export.main([*stores(tmp_path), "--out", str(out)]) == 0
    assert yaml.safe_load(out.read_text())["trial"] == study.best_trial.number
    capsys.readouterr()
    args = ["--config", str(out), "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    assert train.main([*args, "--from-checkpoint", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    test_acc = float(text.split("test acc = ")[1].split()[0])
    assert abs(test_acc - study.best_value) < 0.1  # GPU-trained weights, scored on the CPU
