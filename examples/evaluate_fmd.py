"""Score generated digits with the Fréchet MNIST Distance.

    python examples/evaluate_fmd.py SAMPLES [--protocol report|full]
    python examples/evaluate_fmd.py --quick     # scores 64 real test digits as a demonstration

SAMPLES is a tensor file (``torch.save`` of ``(N, 1, 28, 28)`` in [0, 1], e.g. from
``colddiff sample --save-tensor``) or a folder of 28x28 PNG files.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from colddiff import data, fmd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("samples", type=Path, nargs="?")
    parser.add_argument("--protocol", choices=["report", "full"], default="full")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="score 64 real MNIST test digits")
    args = parser.parse_args()
    if args.samples is None and not args.quick:
        parser.error("give SAMPLES, or --quick")

    with tempfile.TemporaryDirectory() as scratch:
        path = args.samples
        if args.quick:
            test = data.mnist(train=False).images
            path = Path(scratch) / "real.pt"
            torch.save(test[torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:64]], path)
        result = fmd.score(fmd.load_samples(path), protocol=args.protocol)
    print(json.dumps(result.to_dict(), indent=2) if args.json else fmd.describe(result))


if __name__ == "__main__":
    main()
