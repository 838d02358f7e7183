"""What ``sample`` and ``restore`` share: which trained model, on which device and how fast, and
where the images go."""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colddiff import runtime
from colddiff.cli.arguments import COUNT, checkpoint_file, image_file, output_file
from colddiff.cli.errors import usage_error

if TYPE_CHECKING:
    from torch import Tensor

    from colddiff.pretrained import Pretrained

__all__ = ["add_model_options", "add_outputs", "load_model", "write_images"]


def _shipped_names() -> list[str]:
    """``colddiff.pretrained.available()``, read without importing PyTorch (for ``--help``)."""
    weights = resources.files("colddiff") / "pretrained" / "weights"
    return sorted(entry.name.removesuffix(".json") for entry in weights.iterdir()
                  if entry.name.endswith(".json"))


def add_model_options(command: argparse.ArgumentParser) -> None:
    """``--checkpoint`` or ``--pretrained``, ``--no-ema``, ``--seed``, ``--device``,
    ``--precision`` and ``--compile``."""
    model = command.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", type=checkpoint_file, help="a training checkpoint")
    model.add_argument("--pretrained", metavar="NAME",
                       help=f"a model shipped with colddiff ({', '.join(_shipped_names())})")
    command.add_argument("--no-ema", action="store_true", help="use the raw weights, not the EMA")
    command.add_argument("--seed", type=COUNT, default=0)
    command.add_argument("--device", default="auto")
    command.add_argument("--precision", choices=runtime.PRECISIONS,
                         help="the network's arithmetic: fp32, bf16/fp16 autocast, or auto (bf16 where the "
                         "device has native bf16, else fp32) (default: the run's)")
    command.add_argument("--compile", nargs="?", const="default", choices=runtime.COMPILE_MODES,
                         metavar="MODE", help="torch.compile the network; MODE: "
                         + ", ".join(runtime.COMPILE_MODES) + " (default when given without one: default)")


def add_outputs(command: argparse.ArgumentParser, default: str, tensor: str) -> None:
    """``--out`` (the image grid) and ``--save-tensor`` (``tensor``, as a tensor file)."""
    command.add_argument("--out", type=image_file, default=Path(default),
                         help=f"the image grid (.png, .jpg, ...; default {default})")
    command.add_argument("--save-tensor", type=output_file, metavar="FILE.pt",
                         help=f"also save {tensor} as a tensor (written first)")


def load_model(args: argparse.Namespace) -> Pretrained:
    """The model of ``--checkpoint`` / ``--pretrained`` on ``--device``, with ``--precision``
    and ``--compile`` applied; usage errors exit with status 2."""
    from colddiff import pretrained
    from colddiff.runtime import resolve_device

    if args.pretrained is not None and args.pretrained not in pretrained.available():
        usage_error(args, f"--pretrained must be one of {pretrained.available()}, got {args.pretrained!r}")
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        usage_error(args, error)
    if args.pretrained is not None:
        model = pretrained.load(args.pretrained, device)
    else:
        model = pretrained.from_checkpoint(args.checkpoint, device, ema=not args.no_ema)
    if args.precision is not None:
        model.denoiser.precision = args.precision
    if args.compile not in (None, "off"):
        model.denoiser.compile(mode=args.compile)
    return model


def write_images(args: argparse.Namespace, grid: Tensor, tensor: Tensor | dict[str, Any], nrow: int) -> None:
    """Save ``tensor`` (a tensor, or a dict of them and plain data) to ``--save-tensor`` (first:
    it survives a failing image write) and ``grid`` as the image ``--out``, and say so."""
    import torch
    from torchvision.utils import save_image

    written = []
    if args.save_tensor is not None:
        args.save_tensor.parent.mkdir(parents=True, exist_ok=True)
        torch.save(tensor, args.save_tensor)
        written.append(str(args.save_tensor))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid.clamp(0, 1), args.out, nrow=nrow)
    written.insert(0, str(args.out))
    print(f"colddiff {args.command}: wrote {' and '.join(written)}")
