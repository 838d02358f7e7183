"""A network together with the degradation it inverts and what it predicts."""

from __future__ import annotations

from typing import Literal, cast, get_args

import torch
from torch import Tensor, nn

from colddiff.degradations.base import Degradation, check_images, check_timesteps
from colddiff.degradations.mixing import MixingDegradation
from colddiff.precision import autocast
from colddiff.runtime import Precision, check_precision

__all__ = ["LOSSES", "Denoiser", "Loss", "Target"]

Target = Literal["eps", "x0", "v"]
_TARGETS: tuple[str, ...] = get_args(Target)
Loss = Literal["mse", "soft"]
#: The training losses: ``"mse"`` (of the prediction) and ``"soft"`` (after corruption).
LOSSES: tuple[str, ...] = get_args(Loss)


class Denoiser(nn.Module):
    """A network that undoes a :class:`~colddiff.Degradation`.

    The network is called as ``net(x_t, t / T)`` and predicts the source mixed into the image
    (``predict="eps"``, the DDPM choice: the Gaussian noise for :class:`GaussianNoise`), the clean
    image (``predict="x0"``, Bansal et al.'s ``R(x_t, t)``), or the velocity
    ``v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x0`` (``predict="v"``, Salimans & Ho
    2022, for mixing degradations). :meth:`predict_x0` and :meth:`predict_source` convert between
    them where the degradation allows it.

    With ``precision="bf16"`` or ``"fp16"`` the network runs under :func:`torch.autocast`
    (:mod:`colddiff.precision`) and its output is returned in the input's dtype, so the loss and
    every sampler's arithmetic stay float32; the time ``t / T`` is always computed in float32
    (in bfloat16 the steps 998, 999 and 1000 of 1000 would all be 1.0).

    The training loss (:meth:`loss`) is the mean squared error of the prediction
    (``loss="mse"``), or, for a linear corruption ``x_t = C_t x0 + s_t z``
    (:attr:`Degradation.linear <colddiff.Degradation.linear>`), Soft Score Matching's loss
    measured after corruption (``loss="soft"``; Daras et al. 2023, "Soft Diffusion", their
    reparametrised objective ``||C_t (h_theta(x_t, t) - x0)||^2`` with ``h_theta`` the
    clean-image network): the mean of ``(C_t x0_hat - C_t x0)^2``
    (:meth:`~colddiff.Degradation.corrupt`, with the training source's own part fixed). It
    trains the network to predict a clean image that, corrupted, matches the corrupted data:
    errors the corruption removes (detail a blur wipes out, pixels a mask greys) cost nothing.

    Args:
        net: The network, e.g. :class:`colddiff.nets.CNN`.
        degradation: The forward process it is trained to invert.
        predict: ``"eps"``, ``"x0"`` or ``"v"``.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``: the arithmetic of the network's
            forward pass.
        loss: ``"mse"`` or ``"soft"`` (with ``predict="x0"``, for a linear corruption).

    Raises:
        ValueError: If ``net`` is not an ``nn.Module`` with parameters, ``predict`` is unknown,
            is ``"eps"`` for a degradation whose clean image
            cannot be recovered from its source (a deterministic one such as blur), or is ``"v"``
            for one that is not a :class:`~colddiff.degradations.MixingDegradation`,
            ``precision`` is unknown, or ``loss`` is unknown or ``"soft"`` without
            ``predict="x0"`` or for a degradation that is not a linear corruption.
    """

    def __init__(self, net: nn.Module, degradation: Degradation, predict: Target = "eps",
                 precision: Precision = "fp32", loss: Loss = "mse") -> None:
        super().__init__()
        if not isinstance(net, nn.Module) or next(net.parameters(), None) is None:
            kind = "an nn.Module without parameters" if isinstance(net, nn.Module) else type(net).__name__
            raise ValueError(f"net must be an nn.Module with parameters (a trainable network), got {kind}")
        if predict not in _TARGETS:
            raise ValueError(f"predict must be one of {list(_TARGETS)}, got {predict!r}")
        if not isinstance(degradation, Degradation):
            raise ValueError(
                f"degradation must be a colddiff.Degradation, got {type(degradation).__name__}"
            )
        if predict == "eps" and not (degradation.has_source and degradation.invertible):
            raise ValueError(
                f"predict='eps' needs a degradation with a source that the clean image can be "
                f"recovered from; {type(degradation).__name__} has none, use predict='x0'"
            )
        if predict == "v" and not (isinstance(degradation, MixingDegradation) and degradation.invertible):
            raise ValueError(
                f"predict='v' needs a mixing degradation (x_t = sqrt(alpha_bar) x0 + sqrt(1 - "
                f"alpha_bar) source); {type(degradation).__name__} is not one, use predict='x0'"
            )
        check_loss(loss, degradation, predict)
        self.net = net
        self.degradation = degradation
        self.predict: Target = predict
        self.precision: Precision = check_precision(precision)
        #: The training loss, ``"mse"`` or ``"soft"``.
        self.loss_name: Loss = loss

    @property
    def num_timesteps(self) -> int:
        """``T`` of the degradation."""
        return self.degradation.num_timesteps


    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        """The raw network output for ``x_t`` at integer steps ``t`` ``(B,)``.

        Raises:
            ValueError: If the network's output is not shaped like ``x_t`` (it would otherwise
                broadcast silently in the loss and the samplers).
        """
        time = t.to(torch.promote_types(x_t.dtype, torch.float32)) / self.degradation.num_timesteps
        with autocast(x_t.device, self.precision):
            output = self.net(x_t, time)
        if not isinstance(output, Tensor) or output.shape != x_t.shape:
            got = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
            raise ValueError(
                f"the network must return a tensor shaped like its input x_t {tuple(x_t.shape)}, "
                f"got {got}; check its output channels"
            )
        # A copy in the input's dtype: a network compiled with CUDA graphs overwrites its output
        # at the next call, and samplers keep predictions across calls.
        return output.to(x_t.dtype, copy=True)

    def loss(self, x0: Tensor, *, generator: torch.Generator | None = None,
             t: Tensor | None = None) -> Tensor:
        """The training loss: the mean squared error of the prediction (or, with
        ``loss="soft"``, of its corruption).

        Draws ``t`` uniformly from ``1..T`` and a source per sample, degrades ``x0`` and compares
        the network's output with the target (the source for ``"eps"``, ``x0`` for ``"x0"``);
        with ``loss="soft"``, ``C_t`` of the output with ``C_t x0``.

        Args:
            x0: A batch of clean images ``(B, C, H, W)``.
            generator: Random generator for ``t`` and the source; on ``x0``'s device.
            t: Fixed steps ``(B,)`` instead of random ones.

        Returns:
            The scalar loss.
        """
        check_images("x0", x0)
        if t is None:
            t = torch.randint(1, self.num_timesteps + 1, (x0.shape[0],), generator=generator,
                              device=x0.device)
        else:
            t = check_timesteps(t, x0, self.num_timesteps)
        source = self.degradation.sample_source(x0, generator=generator)
        x_t = self.degradation.degrade(x0, t, source)
        if self.loss_name == "soft":  # predict="x0" (checked in __init__)
            corrupt = self.degradation.corrupt
            return nn.functional.mse_loss(corrupt(self(x_t, t), t, source), corrupt(x0, t, source))
        if self.predict == "x0":
            target = x0
        else:  # "eps" and "v" imply a source (checked in __init__)
            assert source is not None
            target = source
            if self.predict == "v":
                target = cast(MixingDegradation, self.degradation).velocity(x0, t, source)
        return nn.functional.mse_loss(self(x_t, t), target)

    def predict_x0(self, x_t: Tensor, t: Tensor) -> Tensor:
        """The predicted clean image ``x0_hat`` for ``x_t`` at steps ``t`` ``(B,)``."""
        output: Tensor = self(x_t, t)
        if self.predict == "x0":
            return output
        if self.predict == "v":
            return cast(MixingDegradation, self.degradation).x0_from_velocity(x_t, t, output)
        return self.degradation.x0_from_source(x_t, t, output)

    def predict_source(self, x_t: Tensor, t: Tensor) -> Tensor:
        """The predicted source (noise, mixed-in image) for ``x_t`` at steps ``t >= 1``.

        Raises:
            NotImplementedError: If the degradation cannot recover its source from ``x0``.
        """
        if self.predict == "eps":
            output: Tensor = self(x_t, t)
            return output
        return self.degradation.source_from_x0(x_t, t, self.predict_x0(x_t, t))

    def extra_repr(self) -> str:
        precision = f", precision={self.precision!r}" if self.precision != "fp32" else ""
        loss = f", loss={self.loss_name!r}" if self.loss_name != "mse" else ""
        return f"predict={self.predict!r}, degradation={self.degradation!r}{precision}{loss}"


def check_loss(loss: object, degradation: Degradation, predict: str) -> None:
    """Check a :class:`Denoiser`'s ``loss`` against its degradation and target.

    Raises:
        ValueError: Naming ``loss``: unknown, or ``"soft"`` without ``predict="x0"`` or for a
            degradation that is not a linear corruption.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)}, got {loss!r}")
    if loss == "soft" and predict != "x0":
        raise ValueError(f"loss='soft' needs predict='x0' (the network predicts the clean image, which "
                         f"the loss corrupts), got predict={predict!r}")
    if loss == "soft" and not degradation.linear:
        raise ValueError(f"loss='soft' needs a degradation that is a linear corruption x_t = C_t x0 + "
                         f"s_t z (Degradation.linear); {type(degradation).__name__} is not one, use "
                         f"loss='mse'")
