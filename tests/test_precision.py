"""Reduced precision, compilation, channels-last and a training step without per-step syncs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from colddiff import Schedule, checkpoints, fmd, nets, runtime, samplers
from colddiff.config import TrainConfig, build_denoiser
from colddiff.degradations import GaussianNoise
from colddiff.denoisers import Denoiser
from colddiff.precision import autocast, grad_scaler
from colddiff.runtime import check_precision
from colddiff.training import COMPILE_WARMUP_STEPS, NonFiniteLossError, Trainer
from colddiff.training.ema import EMA
from colddiff.training.state import load_optimizer_state

TINY = {"net_kwargs": {"channels": [4, 4]}, "limit_train": 128, "batch_size": 16,
        "sample_every": 0, "epochs": 2}


def tiny(**changes: object) -> TrainConfig:
    return TrainConfig.preset("ddpm-short", **{**TINY, **changes})


class Recorder(nn.Module):
    """Returns zeros; remembers the time input and whether autocast was on, and in which type."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))
        self.times: list[Tensor] = []
        self.autocast: list[torch.dtype | None] = []

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        self.times.append(t)
        enabled = torch.is_autocast_enabled(x.device.type)
        self.autocast.append(torch.get_autocast_dtype(x.device.type) if enabled else None)
        return (x * self.weight).to(torch.bfloat16 if enabled else x.dtype)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("input_dtype", [torch.float32, torch.bfloat16])
def test_the_time_input_keeps_its_resolution(precision: str, input_dtype: torch.dtype) -> None:
    net = Recorder()
    denoiser = Denoiser(net, GaussianNoise(Schedule.preset("default")), precision=precision)  # type: ignore[arg-type]
    x_t = torch.zeros(3, 1, 4, 4, dtype=input_dtype)
    denoiser(x_t, torch.tensor([998, 999, 1000]))
    # In bfloat16, 998/1000, 999/1000 and 1000/1000 are all 1.0; the network must see three times.
    assert net.times[0].dtype == torch.float32
    assert net.times[0].tolist() == torch.tensor([0.998, 0.999, 1.0]).tolist()


@pytest.mark.parametrize(("precision", "dtype"), [("fp32", None), ("bf16", torch.bfloat16),
                                                  ("fp16", torch.float16)])
def test_the_network_runs_under_autocast_and_returns_the_input_dtype(precision: str,
                                                                      dtype: torch.dtype | None) -> None:
    net = Recorder()
    denoiser = Denoiser(net, GaussianNoise(Schedule.preset("short")), precision=precision)  # type: ignore[arg-type]
    output = denoiser(torch.ones(2, 1, 4, 4), torch.tensor([1, 2]))
    assert net.autocast == [dtype]
    assert output.dtype == torch.float32  # the loss and the samplers' arithmetic stay float32
    assert ("precision" in repr(denoiser)) == (precision != "fp32")


def test_bf16_predictions_are_the_fp32_ones_to_bf16_accuracy() -> None:
    torch.manual_seed(0)
    degradation = GaussianNoise(Schedule.preset("short"))
    net = nets.CNN(channels=[8, 8])
    x_t, t = torch.rand(4, 1, 28, 28), torch.tensor([1, 50, 120, 200])
    full = Denoiser(net, degradation)(x_t, t)
    reduced = Denoiser(net, degradation, precision="bf16")(x_t, t)
    assert not torch.equal(full, reduced)  # the reduced arithmetic did run
    # bfloat16 keeps 8 significant bits: relative error ~2^-8 per operation.
    torch.testing.assert_close(reduced, full, rtol=0.05, atol=0.05 * full.abs().max().item())


@pytest.mark.parametrize("bad", ["fp64", "half", None, 16])
def test_an_unknown_precision_is_named(bad: object) -> None:
    with pytest.raises(ValueError, match=r"precision must be one of \['fp32', 'bf16', 'fp16', 'auto'\]"):
        check_precision(bad)
    with pytest.raises(ValueError, match="precision must be one of"):
        Denoiser(nets.CNN(channels=[4]), GaussianNoise(), precision=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="precision must be one of"):
        tiny(precision=bad)


def test_config_names_bad_compile_and_layout_values() -> None:
    with pytest.raises(ValueError, match=r"compile must be one of \['off', 'default', 'reduce-overhead'"):
        tiny(compile=True)
    with pytest.raises(ValueError, match="channels_last must be true or false, got 'yes'"):
        tiny(channels_last="yes")


def test_autocast_and_scaler_follow_the_precision() -> None:
    with autocast("cpu", "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    with autocast("cpu", "bf16"):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    assert grad_scaler("cpu", "fp16").is_enabled()
    assert not grad_scaler("cpu", "bf16").is_enabled()


@pytest.mark.parametrize(("avx512_bf16", "amx"), [(False, False), (True, False), (False, True)])
def test_auto_is_bf16_only_where_the_cpu_has_bf16_instructions(monkeypatch: pytest.MonkeyPatch,
                                                               avx512_bf16: bool, amx: bool) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    native = avx512_bf16 or amx
    assert runtime.native_bf16("cpu") is native
    assert runtime.resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    assert [runtime.resolve_precision(p, "cpu") for p in ("fp32", "bf16", "fp16")] == ["fp32", "bf16", "fp16"]
    with autocast("cpu", "auto"):
        assert torch.is_autocast_enabled("cpu") is native
        if native:
            assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    assert not grad_scaler("cpu", "auto").is_enabled(), "auto is never fp16"
    metric = fmd.FMD(classifier=fmd.MNISTClassifier(), precision="auto")
    assert metric.precision == ("bf16" if native else "fp32")
    # A denoiser keeps "auto" and resolves it where its forward pass runs.
    denoiser = Denoiser(nets.CNN(channels=[4]), GaussianNoise(), precision="auto")
    x_t = torch.randn(2, 1, 28, 28)
    out = denoiser(x_t, torch.tensor([3, 500]))
    assert denoiser.precision == "auto" and out.dtype == torch.float32
    with autocast("cpu", "bf16" if native else "fp32"):
        expected = denoiser.net(x_t, torch.tensor([3, 500]) / denoiser.num_timesteps).float()
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_auto_on_a_device_without_bf16_is_fp32() -> None:
    assert runtime.resolve_precision("auto", "meta") == "fp32"
    with pytest.raises(ValueError, match=r"one of \['fp32', 'bf16', 'fp16', 'auto'\], got 'bf32'"):
        runtime.resolve_precision("bf32", "cpu")


def _fp32_everywhere(state: dict[str, object]) -> None:
    for part in ("model", "ema"):
        tensors = state[part]
        assert isinstance(tensors, dict)
        assert {v.dtype for v in tensors.values() if v.is_floating_point()} == {torch.float32}, part


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_training_keeps_fp32_weights_and_resumes_exactly(
        tmp_path: Path, data_dir: Path, precision: str) -> None:
    config = tiny(precision=precision, ema=0.9, epochs=3)
    straight = Trainer(config, tmp_path / "straight", quiet=True)
    history = straight.fit()
    assert all(torch.isfinite(torch.tensor(r["loss"])) and r["loss"] > 0 for r in history)
    assert {p.dtype for p in straight.net.parameters()} == {torch.float32}
    state = checkpoints.load(straight.checkpoint_path)
    _fp32_everywhere(state)
    assert state["config"]["precision"] == precision
    assert bool(state["grad_scaler"]) == (precision == "fp16")  # fp16's loss scale is kept

    Trainer(config.replace(epochs=1), tmp_path / "resumed", quiet=True).fit()
    Trainer(config, tmp_path / "resumed", quiet=True).fit(resume=True)
    resumed = checkpoints.load(tmp_path / "resumed" / "checkpoints" / "last.pt")
    for part in ("model", "ema"):
        for key, value in state[part].items():
            assert torch.equal(value, resumed[part][key]), (part, key)
    metrics = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["loss"] for line in metrics] == [r["loss"] for r in history]


def test_an_fp16_runs_loss_scale_is_restored_on_resume(tmp_path: Path, data_dir: Path) -> None:
    config = tiny(precision="fp16", epochs=1)
    trainer = Trainer(config, tmp_path, quiet=True)
    trainer.fit()
    state = checkpoints.load(trainer.checkpoint_path)
    assert state["grad_scaler"]["scale"] == trainer.scaler.get_scale()
    state["grad_scaler"]["scale"] = 512.0  # as after overflows had lowered it
    checkpoints.save(state, trainer.checkpoint_path)
    resumed = Trainer(config.replace(epochs=2), tmp_path, quiet=True)
    resumed.resume()
    assert resumed.scaler.get_scale() == 512.0


def test_the_moving_average_matches_averaged_models_own_update() -> None:
    """The EMA is updated without reading its counter back (no device sync); the result must be
    exactly ``AveragedModel.update_parameters``'s, including the restart at ``start``."""
    net = nets.CNN(channels=[4, 4])
    ema = EMA(net, decay=0.8, start=3)
    reference = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(0.8), use_buffers=True)
    generator = torch.Generator().manual_seed(0)
    for step in range(1, 8):
        with torch.no_grad():
            for parameter in net.parameters():
                parameter.add_(torch.randn(parameter.shape, generator=generator))
        ema.update(step)  # nothing before step 3
        if step >= 3:
            if step == 3:
                reference.n_averaged.zero_()
            reference.update_parameters(net)
        for ours, theirs in zip(ema.state_dict().values(), reference.state_dict().values(), strict=True):
            assert torch.equal(ours, theirs), step


def test_the_trainer_samples_from_the_average_once_it_has_started(tmp_path: Path, data_dir: Path) -> None:
    trainer = Trainer(tiny(ema=0.8, ema_start=3, epochs=1), tmp_path, quiet=True)  # 8 steps
    assert trainer.ema is not None and trainer.sampling_denoiser() is trainer.denoiser
    trainer.fit()
    assert trainer.ema.started and trainer.sampling_denoiser().net is trainer.ema.module
    assert trainer.sampler().denoiser is trainer.sampling_denoiser()


def test_a_non_finite_loss_at_the_time_budget_names_its_step(tmp_path: Path, data_dir: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A time budget that runs out reads the pending losses back after the step was taken."""
    trainer = Trainer(tiny(max_minutes=1e-9), tmp_path, quiet=True)
    trainer.losses.every = 4
    nan_from_call(monkeypatch, 1)
    with pytest.raises(NonFiniteLossError, match=r"at epoch 1, step 1 \(batch 1 of the epoch\)"):
        trainer.fit()


def test_resuming_keeps_this_devices_fused_adam(tmp_path: Path, data_dir: Path) -> None:
    trainer = Trainer(tiny(epochs=1), tmp_path, quiet=True)
    trainer.fit()
    saved = checkpoints.load(trainer.checkpoint_path)["optimizer"]  # the CPU's plain Adam
    assert saved["param_groups"][0]["fused"] is None
    fused = torch.optim.Adam(trainer.net.parameters(), lr=2e-4, fused=True)  # as on CUDA
    load_optimizer_state(fused, saved)
    assert fused.param_groups[0]["fused"] is True
    assert fused.state_dict()["state"][0]["step"] == saved["state"][0]["step"]
    Trainer(tiny(epochs=2), tmp_path, quiet=True).fit(resume=True)


class BatchNormNet(nn.Module):
    """A network with BatchNorm: running statistics (float) and a step counter (integer)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.norm = nn.Conv2d(1, 1, 3, padding=1), nn.BatchNorm2d(1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.norm(self.conv(x))


def test_the_moving_average_of_buffers_and_a_late_start() -> None:
    net = BatchNormNet()
    ema = EMA(net, decay=0.5, start=0)
    reference = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(0.5), use_buffers=True)
    for step in (11, 12, 13):  # resumed past start = 0 with an average that never started: copy first
        net(torch.randn(4, 1, 5, 5), torch.zeros(4))  # moves the running statistics
        ema.update(step)
        reference.update_parameters(net)
    ours, theirs = ema.module.state_dict(), reference.module.state_dict()
    for key, value in ours.items():
        if value.is_floating_point():
            assert torch.equal(value, theirs[key]), key
    counter = net.norm.num_batches_tracked
    assert int(counter) == 3 and torch.equal(ours["norm.num_batches_tracked"], counter)


def test_losses_read_back_every_k_steps_give_the_same_run(tmp_path: Path, data_dir: Path) -> None:
    every_step = Trainer(tiny(), tmp_path / "a", quiet=True)
    deferred = Trainer(tiny(), tmp_path / "b", quiet=True)
    deferred.losses.every = 3  # as on CUDA (every 50), here on the CPU
    assert [r["loss"] for r in every_step.fit()] == pytest.approx([r["loss"] for r in deferred.fit()],
                                                                  rel=1e-12)
    for a, b in zip(every_step.net.parameters(), deferred.net.parameters(), strict=True):
        assert torch.equal(a, b)


def nan_from_call(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """Make every denoiser's loss NaN from its ``n``-th call on."""
    real_loss, calls = Denoiser.loss, {"n": 0}

    def failing(self: Denoiser, x0: Tensor, **kwargs: Any) -> Tensor:
        calls["n"] += 1
        loss = real_loss(self, x0, **kwargs)
        return loss * float("nan") if calls["n"] >= n else loss

    monkeypatch.setattr(Denoiser, "loss", failing)


@pytest.mark.parametrize(("every", "message"), [
    (1, "at epoch 1, step 6 (batch 6 of the epoch); no checkpoint was written"),
    (4, "at epoch 1, one of the steps 5-8 (batches 5-8 of the epoch); no checkpoint was written"),
])
def test_a_non_finite_loss_is_caught_at_the_next_read_back(tmp_path: Path, data_dir: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           every: int, message: str) -> None:
    trainer = Trainer(tiny(), tmp_path, quiet=True)
    trainer.losses.every = every
    nan_from_call(monkeypatch, 6)
    with pytest.raises(NonFiniteLossError, match=r"the loss is nan " + message.replace("(", r"\(")
                       .replace(")", r"\)")):
        trainer.fit()
    assert trainer.step == (5 if every == 1 else 7)  # the step that read the NaN is not taken


def test_channels_last_trains_like_the_default_layout(tmp_path: Path, data_dir: Path) -> None:
    default = Trainer(tiny(epochs=1), tmp_path / "a", quiet=True)
    last = Trainer(tiny(epochs=1, channels_last=True), tmp_path / "b", quiet=True)
    conv = next(m for m in last.net.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert [r["loss"] for r in default.fit()] == pytest.approx([r["loss"] for r in last.fit()], rel=1e-4)
    state = checkpoints.load(last.checkpoint_path)
    nets.CNN(channels=[4, 4]).load_state_dict(state["model"])  # loads into a plain network


def test_a_compiled_run_books_its_compile_warm_up_apart_and_saves_plain_weights(tmp_path: Path,
                                                                        data_dir: Path) -> None:
    assert COMPILE_WARMUP_STEPS == 3  # 6 steps: 3 of compile warm-up, 3 timed; checkpoints after 2 and 4
    eager = Trainer(tiny(epochs=1, limit_train=96), tmp_path / "eager", quiet=True)
    compiled = Trainer(tiny(epochs=1, limit_train=96, compile="default", checkpoint_every=2),
                       tmp_path / "compiled", quiet=True)
    booked: list[tuple[int, int, float, float]] = []
    save = compiled.save_checkpoint

    def recording_save(epoch_done: bool) -> None:
        state = compiled.state()
        booked.append((state["step"], state["untimed_batches"], state["compile_time_s"],
                       state["epoch_time_s"]))
        save(epoch_done)

    compiled.save_checkpoint = recording_save  # type: ignore[method-assign]
    eager_record, = eager.fit()
    record, = compiled.fit()
    # The mid-epoch checkpoints see the compile warm-up steps booked apart: 2 of them, then all 3.
    assert [(step, untimed) for step, untimed, _, _ in booked[:2]] == [(2, 2), (4, 3)]
    _, _, compile_time, epoch_time = booked[1]
    # Compiling takes seconds; three steps of this tiny network take milliseconds.
    assert compile_time > 0 and epoch_time < compile_time
    assert record["compile_time_s"] >= round(compile_time, 3) and "compile_time_s" not in eager_record
    assert record["epoch_time_s"] < record["compile_time_s"]
    state = checkpoints.load(compiled.checkpoint_path)
    assert state["untimed_batches"] == 0  # the epoch is done
    assert state["model"].keys() == eager.net.state_dict().keys()  # no "_orig_mod." prefixes
    assert record["loss"] == pytest.approx(eager_record["loss"], rel=1e-4)
    for key, value in eager.net.state_dict().items():
        torch.testing.assert_close(state["model"][key], value, rtol=1e-4, atol=1e-5)


def test_the_command_line_sets_the_speed_options(tmp_path: Path, data_dir: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import run_cli

    status, _, err = run_cli(capsys, "train", "--preset", "ddpm-short", "--limit-train", "32",
                             "--batch-size", "16", "--epochs", "1", "--sample-every", "0",
                             "--precision", "bf16", "--channels-last", "--out", str(tmp_path),
                             "--quiet", "--device", "cpu")
    assert status == 0, err
    config = TrainConfig.load(tmp_path / "config.toml")
    assert (config.precision, config.channels_last, config.compile) == ("bf16", True, "off")
    status, _, err = run_cli(capsys, "train", "--preset", "ddpm-short", "--precision", "fp64")
    assert status == 2 and "--precision must be one of ['fp32', 'bf16', 'fp16', 'auto'], got 'fp64'" in err


@pytest.mark.parametrize("native", [False, True])
def test_the_default_config_trains_and_samples_in_bf16_only_where_the_cpu_computes_in_it(
        monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: native)
    config = TrainConfig()
    assert config.precision == "auto"
    denoiser = build_denoiser(config.replace(net="cnn", net_kwargs={"channels": [4, 4]}))
    recorded: list[torch.dtype | None] = []
    denoiser.net.register_forward_pre_hook(lambda module, args: recorded.append(
        torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None))
    denoiser.loss(torch.rand(2, 1, 28, 28))  # a training step's forward pass
    sampler = samplers.create("ddim", denoiser)
    sampler.sample(sampler.prior(2, generator=torch.Generator().manual_seed(0)), 2)  # two sampling steps
    assert recorded == [torch.bfloat16 if native else None] * 3
