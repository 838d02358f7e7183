"""FMD feature extraction speed and the streaming metric's memory.

``fmd_features``: images/s of the shipped ``mnist-v1`` classifier's features against the
reference study's classifier architecture (the extractor a user of the report would run),
on 10,000 MNIST test images, in batches of 1,000.

``fmd_stream_memory``: growth of resident memory (sampled after every batch of 1,000) of a
process that streams 60,000 MNIST images through :class:`colddiff.fmd.FMD`, against one that
keeps every feature and takes ``torch.cov`` at the end (what a hand-written FMD does). Measured
in fresh subprocesses from ``/proc/self/statm`` (Linux); the streaming run is also measured at
10,000 images to show that it stays flat.
"""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from benchmarks.common import Result, interleaved_medians
from colddiff import data
from colddiff.fmd import MNISTClassifier, load_classifier

_MEMORY_SCRIPT = """
import json, os, sys, torch
from colddiff import data, fmd
def rss_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
n, mode = int(sys.argv[1]), sys.argv[2]
images = data.mnist(train=True).images[:n].clone()
metric = fmd.FMD()
metric.update(images[:1000], real=False)  # warm up the allocator and the classifier
start = peak = rss_mb()
if mode == "stream":
    for chunk in images.split(1000):
        metric.update(chunk, real=True)
        peak = max(peak, rss_mb())
    covariance = metric.real.covariance()
else:
    parts = []
    for chunk in images.split(1000):
        parts.append(metric.features(chunk).double())
        peak = max(peak, rss_mb())
    features = torch.cat(parts)
    peak = max(peak, rss_mb())
    covariance = torch.cov(features.T)
peak = max(peak, rss_mb())
print(json.dumps({"peak_mb": peak, "growth_mb": peak - start}))
"""


def fmd_features(quick: bool) -> list[Result]:
    n, repeats = (2000, 1) if quick else (10_000, 3)
    images = data.mnist(train=False).images[:n]
    ours = load_classifier()
    torch.manual_seed(0)
    report = MNISTClassifier("report").eval()

    def extract(model: MNISTClassifier) -> None:
        with torch.inference_mode():
            for chunk in images.split(1000):
                model.features(chunk)

    times = interleaved_medians({"ours": lambda: extract(ours), "report": lambda: extract(report)}, repeats)
    return [Result("fmd_features", n / times["ours"], n / times["report"],
                   "the report's classifier architecture", "images/s",
                   f"{n} MNIST test images, batches of 1000; higher is better here")]


def _peak(n: int, mode: str) -> dict[str, float]:
    result = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(n), mode], check=True,
                            capture_output=True, text=True)
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def fmd_stream_memory(quick: bool) -> list[Result]:
    large, small = (6000, 1000) if quick else (60_000, 10_000)
    stream, stream_small, keep_all = _peak(large, "stream"), _peak(small, "stream"), _peak(large, "keep")
    return [Result("fmd_stream_memory", stream["growth_mb"], keep_all["growth_mb"],
                   "keeping all features, then torch.cov", "MB of peak-memory growth",
                   f"{large} images (peak RSS {stream['peak_mb']:.0f} MB vs {keep_all['peak_mb']:.0f} MB); "
                   f"streaming {small} images grows {stream_small['growth_mb']:.0f} MB")]
