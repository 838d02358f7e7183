"""Your own images: train on a folder of PNG/JPEG files, sample, and score the samples with your
own feature extractor.

    python examples/your_own_images.py --quick                 # writes a small folder itself
    python examples/your_own_images.py --folder ~/pictures --image-size 32

Without ``--folder`` it writes 512 coloured MNIST digits (32x32 RGB PNGs) to ``OUT/images`` to
stand in for yours (MNIST from ``$COLDDIFF_DATA_DIR`` or downloaded). Writes the run folder,
``samples.png`` and prints the Fréchet distance between samples and training images under a
fixed random projection (replace it with your encoder, or an Inception network: see the FMD
guide).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import save_image

from colddiff import data, fmd
from colddiff.config import TrainConfig
from colddiff.training import Trainer


def write_coloured_digits(folder: Path, n: int) -> None:
    """``n`` MNIST digits, each tinted one of three colours, as 32x32 RGB PNG files."""
    digits = data.load("mnist", limit=n, image_size=32, channels=3).images
    tints = torch.tensor([[1.0, 0.5, 0.2], [0.2, 0.8, 1.0], [0.9, 0.9, 0.3]])
    folder.mkdir(parents=True, exist_ok=True)
    for index, digit in enumerate(digits):
        pixels = (digit * tints[index % 3].view(3, 1, 1) * 255).round().to(torch.uint8)
        Image.fromarray(pixels.permute(1, 2, 0).numpy(), mode="RGB").save(folder / f"{index:04d}.png")


class RandomProjection(torch.nn.Module):
    """A stand-in feature extractor: a fixed random projection of the flattened image."""

    def __init__(self, size: int, width: int = 64) -> None:
        super().__init__()
        weight = torch.randn(width, size, generator=torch.Generator().manual_seed(0)) / size**0.5
        self.register_buffer("weight", weight)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1) @ self.weight.T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, help="your images (default: write coloured digits)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="one epoch, 10 sampling steps")
    parser.add_argument("--out", type=Path, default=Path("runs/your_own_images"))
    args = parser.parse_args()

    folder = args.folder
    if folder is None:
        folder = args.out / "images"
        write_coloured_digits(folder, 512)
    config = TrainConfig.preset("ddpm-default", dataset=str(folder), image_size=args.image_size,
                                epochs=1 if args.quick else 20, sample_every=0, sampler="ddim",
                                sample_steps=10 if args.quick else 50, batch_size=64)
    trainer = Trainer(config, args.out / "run", overwrite=True)  # an example starts afresh each time
    trainer.fit()

    samples = trainer.sample(64, config.sample_steps).clamp(0, 1)
    save_image(samples, args.out / "samples.png", nrow=8)
    real = data.load(folder, image_size=args.image_size).images
    extractor = RandomProjection(real[0].numel())
    print(f"samples: {tuple(samples.shape)} -> {args.out / 'samples.png'}")
    print(f"Frechet distance, samples vs training images (random projection): "
          f"{fmd.distance(samples, real, features=extractor):.3f}")
    print(f"the same for two halves of the training images (what real data scores): "
          f"{fmd.distance(real[: len(real) // 2], real[len(real) // 2:], features=extractor):.3f}")


if __name__ == "__main__":
    main()
