"""Run the benchmark suite: ``python -m benchmarks [--quick] [--json FILE] [--cases ...] [--device D]``.

``--device`` is passed to the cases that take one (``train_throughput``); the others run on the CPU.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import Result, machine
from benchmarks.data import blur_prior, folder_loading
from benchmarks.fmd import fmd_features, fmd_stream_memory
from benchmarks.frechet import frechet_cases
from benchmarks.sampling import sampler_overhead, sampling_throughput
from benchmarks.throughput import train_throughput

CASES: dict[str, Callable[..., list[Result]]] = {
    "sampler_overhead": sampler_overhead,
    "train_throughput": train_throughput,
    "frechet": frechet_cases,
    "fmd_features": fmd_features,
    "fmd_stream_memory": fmd_stream_memory,
    "sampling_throughput": sampling_throughput,
    "blur_prior": blur_prior,
    "folder_loading": folder_loading,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the cases run")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--device", default="cpu", help="for the cases that take one: cpu, cuda, auto")
    args = parser.parse_args(argv)

    results: list[Result] = []
    start = time.perf_counter()
    for name in args.cases:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        takes_device = "device" in inspect.signature(CASES[name]).parameters
        results.extend(CASES[name](args.quick, **({"device": args.device} if takes_device else {})))
    print(f"{'case':<30} {'ours':>12} {'peer':>12} {'ratio':>8}  unit / peer")
    for r in results:
        print(f"{r.case:<30} {r.ours:>12.4g} {r.peer:>12.4g} {r.ratio:>8.3f}  {r.unit} / {r.peer_name}"
              + (f"  ({r.note})" if r.note else ""))
    report = {"machine": machine(), "quick": args.quick,
              "total_seconds": round(time.perf_counter() - start, 1),
              "results": [r.to_dict() for r in results]}
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    bad = [r.case for r in results if not (math.isfinite(r.ours) and math.isfinite(r.peer))]
    if bad:
        print(f"non-finite results: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
