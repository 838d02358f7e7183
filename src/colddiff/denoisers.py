"""A network together with the degradation it inverts and what it predicts."""

from __future__ import annotations

from typing import Literal, cast, get_args

import torch
from torch import Tensor, nn

from colddiff.conditioning import DEFAULT_COND_DROP, Conditioning, check_cond_drop, check_guidance
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

    A network that declares a conditioning (:mod:`colddiff.conditioning`: the built-in ones
    built with ``num_classes``) makes a conditional denoiser: it is called as ``net(x_t, t / T,
    labels)``, its loss drops each label with probability ``cond_drop`` (to the null class), and
    its predictions take ``labels`` and a classifier-free ``guidance`` scale.

    Args:
        net: The network, e.g. :class:`colddiff.nets.CNN`.
        degradation: The forward process it is trained to invert.
        predict: ``"eps"``, ``"x0"`` or ``"v"``.
        precision: ``"fp32"``, ``"bf16"``, ``"fp16"`` or ``"auto"``: the arithmetic of the network's
            forward pass.
        loss: ``"mse"`` or ``"soft"`` (with ``predict="x0"``, for a linear corruption).
        cond_drop: For a conditional network: the probability in ``[0, 1)`` with which the
            loss replaces a label by the null class (default
            :data:`~colddiff.conditioning.DEFAULT_COND_DROP`, 0.1).

    Raises:
        ValueError: If ``net`` is not an ``nn.Module`` with parameters, ``predict`` is unknown,
            is ``"eps"`` for a degradation whose clean image
            cannot be recovered from its source (a deterministic one such as blur), or is ``"v"``
            for one that is not a :class:`~colddiff.degradations.MixingDegradation`,
            ``precision`` is unknown, ``loss`` is unknown or ``"soft"`` without
            ``predict="x0"`` or for a degradation that is not a linear corruption, or
            ``cond_drop`` is outside ``[0, 1)`` or given for an unconditional network.
    """

    def __init__(self, net: nn.Module, degradation: Degradation, predict: Target = "eps",
                 precision: Precision = "fp32", loss: Loss = "mse", *,
                 cond_drop: float | None = None) -> None:
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
        conditioning = Conditioning.of(net)
        if cond_drop is not None and conditioning is None:
            raise ValueError(f"cond_drop is for a conditional model, and this {type(net).__name__} takes "
                             "no labels (it declares no conditioning; built-in nets: num_classes)")
        self.net = net
        self.degradation = degradation
        self.predict: Target = predict
        self.precision: Precision = check_precision(precision)
        #: The training loss, ``"mse"`` or ``"soft"``.
        self.loss_name: Loss = loss
        #: The network's conditioning (``None``: unconditional).
        self.conditioning = conditioning
        #: The label dropout of :meth:`loss` (``None`` for an unconditional network).
        self.cond_drop = None if conditioning is None else check_cond_drop(
            DEFAULT_COND_DROP if cond_drop is None else cond_drop)

    @property
    def num_timesteps(self) -> int:
        """``T`` of the degradation."""
        return self.degradation.num_timesteps


    def check_condition(self, labels: Tensor | None, batch: int,
                        device: torch.device | None = None) -> Tensor | None:
        """``labels`` checked against the network's conditioning for ``batch`` images (and moved
        to ``device``): class indices in ``[0, K]`` (``K``: the null class), or a conditioning
        tensor; ``None`` stays ``None`` (the null class, for a conditional network).

        Raises:
            ValueError: If labels are given to an unconditional model, or are not ``batch``
                valid ones (the message says what is accepted).
        """
        if labels is None:
            return None
        if self.conditioning is None:
            raise ValueError("labels given to an unconditional model: its network takes no labels; "
                             "train one with conditional = true to generate chosen classes")
        labels = self.conditioning.check(labels, batch)
        return labels if device is None else labels.to(device)

    def check_guidance(self, guidance: float | None, labels: Tensor | None) -> float | None:
        """``guidance`` checked for this model and ``labels``: ``None``, or a finite number
        ``>= 0`` for a conditional model given labels.

        Raises:
            ValueError: If guidance is given to an unconditional model, without labels, or is
                negative or not finite.
        """
        if guidance is None:
            return None
        if self.conditioning is None:
            raise ValueError(f"guidance given to an unconditional model ({guidance!r}): guidance needs "
                             "a model trained with conditional = true")
        guidance = check_guidance(guidance)
        if labels is None:
            raise ValueError("guidance needs labels: the classes to guide towards")
        return guidance

    def forward(self, x_t: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        """The raw network output for ``x_t`` at integer steps ``t`` ``(B,)``, of the classes
        ``labels`` for a conditional network (``None``: the null class; see
        :meth:`check_condition`).

        Raises:
            ValueError: If the network's output is not shaped like ``x_t`` (it would otherwise
                broadcast silently in the loss and the samplers), or labels are given to an
                unconditional model or are invalid.
        """
        time = t.to(torch.promote_types(x_t.dtype, torch.float32)) / self.degradation.num_timesteps
        labels = self.check_condition(labels, x_t.shape[0])
        with autocast(x_t.device, self.precision):
            if self.conditioning is None:
                output = self.net(x_t, time)
            else:
                if labels is None:
                    labels = self.conditioning.null(x_t.shape[0], x_t.device, x_t.dtype)
                output = self.net(x_t, time, labels)
        if not isinstance(output, Tensor) or output.shape != x_t.shape:
            got = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
            raise ValueError(
                f"the network must return a tensor shaped like its input x_t {tuple(x_t.shape)}, "
                f"got {got}; check its output channels"
            )
        # A copy in the input's dtype: a network compiled with CUDA graphs overwrites its output
        # at the next call, and samplers keep predictions across calls.
        return output.to(x_t.dtype, copy=True)

    def guided(self, x_t: Tensor, t: Tensor, labels: Tensor | None = None,
               guidance: float | None = None) -> Tensor:
        """The network output with classifier-free guidance (Ho & Salimans 2022, eq. 6, whose
        ``w`` is ``guidance - 1``): ``uncond + guidance * (cond - uncond)``, ``cond`` the output
        for ``labels`` and ``uncond`` that for the null class.

        ``guidance`` ``None`` or 1 is the conditional output alone, 0 the unconditional one (one
        network call each); otherwise both come from one call on the ``2B`` batch ``[x_t, x_t]``,
        or from two calls when the network sets ``guidance_batching = False``. Guidance is
        applied to the raw output: the clean-image prediction is an affine function of it with
        weights that do not depend on the network, so guiding ``x0_hat`` is the same.
        """
        if guidance is None or guidance == 1 or labels is None or self.conditioning is None:
            output: Tensor = self(x_t, t, labels)
            return output
        if guidance == 0:
            output = self(x_t, t, None)
            return output
        null = self.conditioning.null(x_t.shape[0], x_t.device, x_t.dtype)
        if self.conditioning.batched:
            cond, uncond = self(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([labels, null])).chunk(2)
        else:
            cond, uncond = self(x_t, t, labels), self(x_t, t, null)
        guided: Tensor = uncond + guidance * (cond - uncond)
        return guided

    def loss(self, x0: Tensor, *, generator: torch.Generator | None = None,
             t: Tensor | None = None, labels: Tensor | None = None) -> Tensor:
        """The training loss: the mean squared error of the prediction (or, with
        ``loss="soft"``, of its corruption).

        Draws ``t`` uniformly from ``1..T`` and a source per sample, degrades ``x0`` and compares
        the network's output with the target (the source for ``"eps"``, ``x0`` for ``"x0"``);
        with ``loss="soft"``, ``C_t`` of the output with ``C_t x0``. A conditional model
        replaces each label by the null class with probability :attr:`cond_drop` (drawn last,
        from ``generator``).

        Args:
            x0: A batch of clean images ``(B, C, H, W)``.
            generator: Random generator for ``t``, the source and the label dropout; on ``x0``'s
                device.
            t: Fixed steps ``(B,)`` instead of random ones.
            labels: The images' labels, for a conditional model (``None``: all null).

        Returns:
            The scalar loss.
        """
        check_images("x0", x0)
        labels = self.check_condition(labels, x0.shape[0], x0.device)
        if t is None:
            t = torch.randint(1, self.num_timesteps + 1, (x0.shape[0],), generator=generator,
                              device=x0.device)
        else:
            t = check_timesteps(t, x0, self.num_timesteps)
        source = self.degradation.sample_source(x0, generator=generator)
        x_t = self.degradation.degrade(x0, t, source)
        if labels is not None:
            labels = self.drop_labels(labels, generator)
        if self.loss_name == "soft":  # predict="x0" (checked in __init__)
            corrupt = self.degradation.corrupt
            return nn.functional.mse_loss(corrupt(self(x_t, t, labels), t, source), corrupt(x0, t, source))
        if self.predict == "x0":
            target = x0
        else:  # "eps" and "v" imply a source (checked in __init__)
            assert source is not None
            target = source
            if self.predict == "v":
                target = cast(MixingDegradation, self.degradation).velocity(x0, t, source)
        return nn.functional.mse_loss(self(x_t, t, labels), target)

    def drop_labels(self, labels: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``labels`` with each replaced by the null condition with probability :attr:`cond_drop`
        (one uniform draw per label from ``generator``; none when ``cond_drop`` is 0)."""
        if self.conditioning is None or not self.cond_drop:
            return labels
        dropped = torch.rand(labels.shape[0], generator=generator, device=labels.device) < self.cond_drop
        null = self.conditioning.null(labels.shape[0], labels.device, labels.dtype)
        return torch.where(dropped.view(-1, *[1] * (labels.ndim - 1)), null, labels)

    def predict_x0(self, x_t: Tensor, t: Tensor, labels: Tensor | None = None,
                   guidance: float | None = None) -> Tensor:
        """The predicted clean image ``x0_hat`` for ``x_t`` at steps ``t`` ``(B,)`` (of the
        classes ``labels``, with classifier-free ``guidance``: see :meth:`guided`)."""
        output: Tensor = self.guided(x_t, t, labels, guidance)
        if self.predict == "x0":
            return output
        if self.predict == "v":
            return cast(MixingDegradation, self.degradation).x0_from_velocity(x_t, t, output)
        return self.degradation.x0_from_source(x_t, t, output)

    def predict_source(self, x_t: Tensor, t: Tensor, labels: Tensor | None = None,
                       guidance: float | None = None) -> Tensor:
        """The predicted source (noise, mixed-in image) for ``x_t`` at steps ``t >= 1`` (of the
        classes ``labels``, with ``guidance``, as :meth:`predict_x0`).

        Raises:
            NotImplementedError: If the degradation cannot recover its source from ``x0``.
        """
        if self.predict == "eps":
            return self.guided(x_t, t, labels, guidance)
        return self.degradation.source_from_x0(x_t, t, self.predict_x0(x_t, t, labels, guidance))

    def extra_repr(self) -> str:
        precision = f", precision={self.precision!r}" if self.precision != "fp32" else ""
        loss = f", loss={self.loss_name!r}" if self.loss_name != "mse" else ""
        conditioning = "" if self.conditioning is None else (
            f", conditioning={self.conditioning.kind!r} ({self.conditioning.size}), "
            f"cond_drop={self.cond_drop}")
        return f"predict={self.predict!r}, degradation={self.degradation!r}{precision}{loss}{conditioning}"


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
