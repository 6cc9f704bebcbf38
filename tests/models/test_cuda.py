"""The engine on a real CUDA device. CI has no GPU, so these run on a GPU machine
(``python -m pytest tests/models/test_cuda.py tests/study/execution/test_cuda_study.py``); the same
code paths are covered on the CPU by test_engine.py, and the CUDA-only branches by these."""

import io
import warnings

import pytest
import torch

import models as m

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (CI has none: run on a GPU machine)"
)
CUDA = torch.device("cuda")
MLP = m.MLPAEConfig(hidden=(256, 64), latent_dim=8)
VAE = m.VAEConfig.mlp(hidden=(64,), latent_dim=4)  # its noise comes from the CUDA generator


def classifier(freeze: str) -> m.ClassifierConfig:
    """A small latent classifier that pre-trains, with dropout (CUDA random numbers)."""
    encoder = m.MLPAEConfig(hidden=(64,), latent_dim=4)
    return m.ClassifierConfig(encoder=encoder, head=(16,), freeze=freeze, pretrain_epochs=1,
                              dropout=0.3)  # fmt: skip


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graphed"])
def test_an_epoch_trains_in_bf16_on_resident_data_with_one_host_sync_per_epoch(small, graph):
    resident = small[0].to(CUDA)
    model = m.prepare_model(m.build_model(MLP), CUDA)
    task = m.task_for(MLP)
    optimizer = m.make_optimizer(model.parameters(), m.TrainConfig(batch_size=50), CUDA)
    assert optimizer.defaults["fused"]
    graphed = m.GraphedStep(model, task, optimizer, resident, 50) if graph else None
    dtypes = set()
    for layer in model.modules():
        if isinstance(layer, torch.nn.Linear):
            layer.register_forward_hook(lambda mod, args, out: dtypes.add(out.dtype))
    generator = torch.Generator().manual_seed(0)
    kwargs = dict(batch_size=50, device=CUDA, generator=generator, graphed=graphed)
    m.train_epoch(model, task, resident, optimizer, **kwargs)  # warm-up (graphed: recorded)
    assert dtypes == {torch.bfloat16}  # autocast: the matmuls run on bf16 tensor cores
    assert (graphed is not None and graphed.graph is not None) is graph
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            metrics = m.train_epoch(model, task, resident, optimizer, **kwargs)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert 1 <= len(syncs) <= 2, [str(w.message) for w in syncs]  # 20 batches: not one per batch
    assert all(p.dtype == torch.float32 and p.is_cuda for p in model.parameters())
    assert 0 < metrics["mse"] < 0.2


@pytest.mark.parametrize(
    "config, optimizer",
    [
        (MLP, "adam"),
        (m.ConvAEConfig(channels=(8, 16), fc_latent=8), "adamw"),  # BatchNorm's running stats
        (VAE, "adam"),  # noise drawn inside the graph
        (classifier("frozen"), "sgd"),
    ],
    ids=["mlp-adam", "conv-bn-adamw", "vae", "frozen-classifier-sgd"],
)
def test_the_cuda_graph_trains_as_the_eager_step_does(config, optimizer, small):
    train, val = (s.to(CUDA) for s in small)
    # 1,000 images = 15 batches of 64 (the graph) + one of 40 (eager)
    cfg = m.TrainConfig(epochs=3, batch_size=64, optimizer=optimizer, lr=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a step that could not be recorded would warn
        graphed = m.fit(config, cfg, train, val, device=CUDA, seed=4)
    eager = m.fit(config, cfg, train, val, device=CUDA, seed=4, cuda_graphs=False)
    for g, e in zip(graphed.history, eager.history, strict=True):
        assert g.phase == e.phase and g.epoch == e.epoch
        for k in e.val:
            assert g.val[k] == pytest.approx(e.val[k], rel=2e-2, abs=1e-3), (g.phase, g.epoch, k)
    trained = [h.value for h in graphed.history if h.phase == "train"]
    assert trained[-1] > trained[0] if graphed.last.metric == "acc" else trained[-1] < trained[0]


def test_a_conv_autoencoder_trains_channels_last_on_the_gpu(small):
    train, val = (s.to(CUDA) for s in small)
    config = m.ConvAEConfig(channels=(8, 16), fc_latent=8)
    result = m.fit(config, m.TrainConfig(epochs=2, batch_size=64), train, val, device=CUDA)
    conv = result.model.encoder[0][0]
    assert conv.weight.is_cuda
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize(
    "config",
    [VAE, classifier("finetune")],
    ids=lambda c: c.family,
)
def test_resuming_on_the_gpu_continues_as_if_never_stopped(config, small):
    train, val = (s.to(CUDA) for s in small)
    cfg = m.TrainConfig(epochs=3, batch_size=64)
    whole = m.fit(config, cfg, train, val, device=CUDA, seed=3)

    class Crash(Exception):
        pass

    saved = []

    def crash(result):
        buf = io.BytesIO()
        torch.save(result.snapshot(), buf)
        saved.append(buf.getvalue())
        if len(saved) == 2:
            raise Crash

    with pytest.raises(Crash):
        m.fit(config, cfg, train, val, device=CUDA, seed=3, on_epoch=crash)
    # As the study reads a snapshot back: onto the CPU, then into the GPU model.
    state = torch.load(io.BytesIO(saved[-1]), map_location="cpu", weights_only=True)
    torch.manual_seed(1234)  # another process's generators: the snapshot must restore them
    resumed = m.fit(config, cfg, train, val, device=CUDA, seed=3, resume=state)
    assert [h.val for h in resumed.history] == [h.val for h in whole.history]
    for k, v in whole.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
