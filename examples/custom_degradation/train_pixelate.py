"""Train and sample with the plugin degradation ``pixelate``, found by name through its entry point.

    pip install -e examples/custom_degradation        # once: installs the plugin package
    colddiff degradations                             # lists: pixelate  entry point ... colddiff-pixelate
    python examples/custom_degradation/train_pixelate.py --quick

The model learns to undo pixelation (super-resolution, Bansal et al. 2022, section 4.4). The
script writes ``runs/pixelate/restore.png``: pixelated test digits, their restorations by
Algorithm 2, and the originals, one row each.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torchvision.utils import save_image

from colddiff import ColdSampler, data, degradations
from colddiff.config import TrainConfig
from colddiff.training import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tiny run that finishes in under a minute")
    parser.add_argument("--out", type=Path, default=Path("runs/pixelate"))
    args = parser.parse_args()

    available = degradations.available()
    if "pixelate" not in available:
        raise SystemExit("the plugin is not installed: pip install -e examples/custom_degradation")
    print(f"pixelate comes from: {available['pixelate']}")

    config = TrainConfig(degradation="pixelate", degradation_kwargs={"num_timesteps": 6}, predict="x0",
                         sampler="cold", sampler_kwargs={"algorithm": 2}, sample_every=0,
                         epochs=1 if args.quick else 5, limit_train=2048 if args.quick else None)
    trainer = Trainer(config, args.out, overwrite=True)  # an example starts afresh each time
    trainer.fit()

    x0 = data.mnist(train=False, limit=8).images
    deg = trainer.degradation
    pixelated = deg.degrade(x0, deg.num_timesteps)
    restored = ColdSampler(trainer.sampling_denoiser(), algorithm=2).sample(pixelated)
    save_image(torch.cat([pixelated, restored.clamp(0, 1), x0]), args.out / "restore.png", nrow=8)
    before = torch.mean((pixelated - x0) ** 2).item()
    after = torch.mean((restored.clamp(0, 1) - x0) ** 2).item()
    print(f"mean squared error against the originals: pixelated {before:.4f}, restored {after:.4f}")
    print(f"wrote {args.out / 'restore.png'}")


if __name__ == "__main__":
    main()
