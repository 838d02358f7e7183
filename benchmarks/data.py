"""Data at other shapes: the blur prior's fit (time and memory) against the full covariance.

Each fit runs in a fresh process, so that its peak resident memory is its own.
"""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks.common import Result

_FIT_SCRIPT = """
import json, resource, sys, time, torch
from colddiff.degradations import Blur
n, channels, size, exact = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "full"
images = torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(0))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if exact:
    Blur.EXACT_PRIOR_SIZE = channels * size * size
start = time.perf_counter()
blur = Blur(num_timesteps=20).fit_prior(images)
seconds = time.perf_counter() - start
kept = [t for t in (blur._prior_mean, blur._prior_scale, blur._prior_residual) if t is not None]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "growth_mb": after - before,
                  "prior_mb": sum(t.numel() * t.element_size() for t in kept) / 2**20}))
"""


def _fit(n: int, channels: int, size: int, mode: str) -> dict[str, float]:
    result = subprocess.run([sys.executable, "-c", _FIT_SCRIPT, str(n), str(channels), str(size), mode],
                            check=True, capture_output=True, text=True)
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def blur_prior(quick: bool) -> list[Result]:
    """The prior fit at 1x28x28, 3x32x32 (both exact) and 3x64x64 (low rank above 4096 values)
    against the full covariance at the same size."""
    n = 256 if quick else 2000
    shapes = [(3, 32)] if quick else [(1, 28), (3, 32), (3, 64)]
    results = []
    for channels, size in shapes:
        ours, full = _fit(n, channels, size, "ours"), _fit(n, channels, size, "full")
        shape = f"{channels}x{size}x{size}"
        note = f"{n} images; prior {ours['prior_mb']:.1f} MB vs {full['prior_mb']:.1f} MB"
        results.append(Result(f"blur_prior_memory_{shape}", ours["growth_mb"], full["growth_mb"],
                              "full covariance", "MB of peak-memory growth", note))
        results.append(Result(f"blur_prior_time_{shape}", ours["seconds"], full["seconds"],
                              "full covariance", "s", note))
    return results


def folder_loading(quick: bool) -> list[Result]:
    """Training images/s at 3x32x32 with a folder of PNGs decoded lazily by 2 DataLoader workers
    against the same folder held in memory (same net, same batches): the cost of not holding it.
    Each runs twice, interleaved, and keeps its best epoch (the first run of a process warms up)."""
    import tempfile
    from pathlib import Path

    import torch
    from PIL import Image

    from colddiff import data
    from colddiff.config import TrainConfig
    from colddiff.training import Trainer

    n = 512 if quick else 4096
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary) / "images"
        folder.mkdir()
        generator = torch.Generator().manual_seed(0)
        for index in range(n):
            pixels = torch.randint(0, 256, (32, 32, 3), generator=generator, dtype=torch.uint8)
            Image.fromarray(pixels.numpy(), mode="RGB").save(folder / f"{index:05d}.png")
        config = TrainConfig.preset("ddpm-default", dataset=str(folder), image_size=32, epochs=1,
                                    sample_every=0, data_workers=2)
        speeds: dict[str, float] = {}
        limit = data.IN_MEMORY_BYTES
        for mode in ("lazy", "memory", "lazy", "memory"):  # interleaved: the first run warms up
            data.IN_MEMORY_BYTES = limit if mode == "memory" else 1
            trainer = Trainer(config, Path(temporary) / mode, quiet=True, device="cpu", overwrite=True)
            speeds[mode] = max(speeds.get(mode, 0.0), trainer.fit()[-1]["images_per_s"])
        data.IN_MEMORY_BYTES = limit
    return [Result("folder_loading_images_per_s", speeds["lazy"], speeds["memory"],
                   "the same folder held in memory", "images/s",
                   f"{n} PNG files, 3x32x32, report CNN, batch 128, 2 workers")]
