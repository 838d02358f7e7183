"""Quickstart: train a small DDPM on MNIST, sample digits, score them with FMD.

    python examples/quickstart.py --quick     # under a minute on a 2-core CPU (poor digits)
    python examples/quickstart.py             # about 15 minutes: a U-Net, better digits

Writes ``runs/quickstart/`` (the run folder, ``samples.png``). MNIST is read from
``$COLDDIFF_DATA_DIR`` or downloaded.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torchvision.utils import save_image

from colddiff import fmd
from colddiff.config import TrainConfig
from colddiff.training import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tiny run that finishes in under a minute")
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart"))
    args = parser.parse_args()

    if args.quick:  # the reference study's CNN, one pass over 1,024 digits
        config = TrainConfig.preset("ddpm-default", epochs=1, limit_train=1024, sample_every=0,
                                    sampler="ddim", sample_steps=50)
    else:  # colddiff's U-Net recipe on 12,800 digits
        config = TrainConfig.preset("mnist-unet", epochs=3, limit_train=12_800, sample_every=0)

    trainer = Trainer(config, args.out, overwrite=True)  # an example starts afresh each time
    trainer.fit()

    samples = trainer.sample(64, config.sample_steps or 50)
    save_image(samples.clamp(0, 1), args.out / "samples.png", nrow=8)
    result = fmd.score(samples.clamp(0, 1), protocol="report")
    print(fmd.describe(result))
    print(f"samples: {args.out / 'samples.png'}")


if __name__ == "__main__":
    main()
