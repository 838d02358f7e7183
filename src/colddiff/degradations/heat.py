"""Blur by the heat equation in the DCT basis: Inverse Heat Dissipation's forward process."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from colddiff.degradations.base import check_positive
from colddiff.degradations.noise import NoiseOption
from colddiff.degradations.registry import register
from colddiff.degradations.separable import SeparableBlur
from colddiff.schedules import Schedule

__all__ = ["Heat", "dct_matrix", "heat_frequencies"]


def dct_matrix(size: int) -> Tensor:
    """The orthonormal DCT-II matrix ``(size, size)`` in float64: row ``k`` is the basis vector
    ``s_k cos(pi k (2 i + 1) / (2 size))`` (``s_0 = sqrt(1 / size)``, else ``sqrt(2 / size)``),
    so ``C x`` is ``scipy.fft.dct(x, norm="ortho")`` and ``C^T`` its inverse."""
    k = torch.arange(size, dtype=torch.float64)[:, None]
    i = torch.arange(size, dtype=torch.float64)[None, :]
    basis = torch.cos(math.pi * k * (2 * i + 1) / (2 * size)) * math.sqrt(2 / size)
    basis[0] /= math.sqrt(2)
    return basis


def heat_frequencies(size: int) -> Tensor:
    """``pi k / size`` for ``k = 0..size-1`` (float64): the square roots of the eigenvalues of
    ``-d^2/dx^2`` with Neumann (zero-flux) boundaries on ``[0, size]``, whose eigenfunctions
    ``cos(pi k x / size)``, sampled at the pixel centres ``x = i + 1/2``, are the DCT-II basis."""
    return math.pi * torch.arange(size, dtype=torch.float64) / size


@register("heat")
class Heat(SeparableBlur):
    """``u_k = F(t_k) u_0 + sigma z``: the heat equation run for time ``t_k``, plus small noise.

    Rissanen, Heinonen & Solin (2023), "Generative Modelling With Inverse Heat Dissipation"
    (ICLR), section 2: the heat equation ``du/dt = Laplacian(u)`` on the image's rectangle with
    Neumann boundaries is solved in the DCT basis, ``F(t) = V exp(-Lambda t) V^T`` (``V^T`` the
    2-D DCT, ``Lambda`` the Laplacian's eigenvalues ``lambda_nm = pi^2 (n^2 / H^2 + m^2 / W^2)``):
    each DCT coefficient ``(n, m)`` of ``u_0`` is scaled by ``exp(-lambda_nm t)``. A Gaussian blur
    of width ``sigma_B`` is the heat equation run for ``t = sigma_B^2 / 2``, and the paper's
    blur widths grow on a log scale, so for ``k = 1..K``::

        t_k = sigma_B,k^2 / 2,   sigma_B,k = exp(linspace(log sigma_min, log sigma_max, K))[k - 1]

    (``t_0 = 0``: ``u_0`` is the image). Their MNIST setting is the default: ``K = 100``,
    ``sigma_min = 0.5``, ``sigma_max = 20`` and training noise ``sigma = 0.01`` (images in
    ``[0, 1]``; official code: AaltoML/generative-inverse-heat-dissipation,
    ``configs/mnist/default_mnist_configs.py`` and ``DCTBlur`` in ``model_code/utils.py``). As
    ``lambda_nm`` is a sum, ``exp(-lambda_nm t)`` factors into one matrix per axis,
    ``C^T diag(exp(-(pi n / H)^2 t)) C`` with ``C`` the DCT-II matrix (:func:`dct_matrix`), which
    is how :class:`SeparableBlur` applies it. The mean colour (``lambda_00 = 0``) is never blurred
    away: ``u_K`` is nearly that colour plus the coarsest shapes, and the prior is a Gaussian fitted
    to fully blurred training images (:meth:`~SeparableBlur.fit_prior`) plus the noise.

    The noise (``noise``, the paper's ``sigma``) is the noise of every
    :class:`~colddiff.Degradation`, so a level or a schedule of ``K + 1`` levels.

    **Training and sampling.** The paper's network predicts the less blurred mean,
    ``mu_theta(u_k, k) ~ F(t_{k-1}) u_0``, with the loss ``||mu_theta(u_k, k) - F(t_{k-1})
    u_0||^2``, and samples ``u_{k-1} = mu_theta(u_k, k) + delta eps`` with ``delta = 1.25 sigma``,
    returning the last mean. In colddiff the denoiser predicts the clean image
    (``predict="x0"``) and the ``cold`` sampler forms the mean as ``D(x0_hat, k - 1) = F(t_{k-1})
    x0_hat``: ``ColdSampler(denoiser, source="estimate", fresh_noise=1.25)`` (in a config:
    ``sampler = "cold"``, ``sampler_kwargs = {source = "estimate", fresh_noise = 1.25}``) is the
    paper's sampler, with no noise after the last step. The two losses have the same minimiser,
    ``F(t_{k-1}) E[u_0 | u_k]`` (``F`` is linear and invertible); they weigh a network's errors
    differently: the paper's is the clean-image loss seen through ``F(t_{k-1})``, which scales
    the error in DCT coefficient ``(n, m)`` by ``exp(-lambda_nm t_{k-1})``, so fine detail that the
    next level blurs away anyway counts less. (The official code also draws training steps from
    ``1..K-1``; colddiff, like every degradation here, from ``1..K``.) Without ``fresh_noise``
    the cold sampler re-estimates the noise (Bansal et al.'s hot sampler) and is deterministic
    after the start, without the sampling noise ``delta`` the paper relies on.

    Args:
        schedule: Accepted for the common constructor; its length is not used (``K`` is this
            degradation's own option).
        num_timesteps: ``K`` (default 100).
        sigma_min: The blur width ``sigma_B,1`` of the first step, in pixels (default 0.5).
        sigma_max: The blur width ``sigma_B,K`` of the last step, in pixels (default 20).
        noise: The noise ``sigma`` (default 0.01), or ``K + 1`` levels.
        image_shape: ``(C, H, W)`` of the images, or ``None`` for any.

    Raises:
        ValueError: Naming the argument, for a width that is not a finite number > 0,
            ``sigma_min > sigma_max``, or a bad ``noise``.

    Attributes:
        sigma: ``(K + 1,)`` float64 the blur widths ``sigma_B,k`` (0 at ``k = 0``).
        tau: ``(K + 1,)`` float64 the heat equation's times ``t_k = sigma_B,k^2 / 2``.
    """

    default_num_timesteps = 100

    def __init__(self, schedule: Schedule | None = None, *, num_timesteps: int | None = None,
                 sigma_min: float = 0.5, sigma_max: float = 20.0, noise: NoiseOption = 0.01,
                 image_shape: tuple[int, int, int] | None = None) -> None:
        del schedule  # K is this degradation's own option
        super().__init__(num_timesteps=num_timesteps, image_shape=image_shape, noise=noise)
        self.sigma_min = check_positive("sigma_min", sigma_min)
        self.sigma_max = check_positive("sigma_max", sigma_max)
        if self.sigma_min > self.sigma_max:
            raise ValueError(f"sigma_min must be at most sigma_max, got sigma_min={sigma_min!r} and "
                             f"sigma_max={sigma_max!r}")
        widths = torch.exp(torch.linspace(math.log(self.sigma_min), math.log(self.sigma_max),
                                          self.num_timesteps, dtype=torch.float64))
        self.sigma = torch.cat([torch.zeros(1, dtype=torch.float64), widths])
        self.tau = self.sigma**2 / 2

    def operators(self, size: int) -> Tensor:
        """``C^T diag(exp(-(pi n / size)^2 t_k)) C`` for ``k = 0..K`` ``(K + 1, size, size)``: the
        heat equation along one axis (``k = 0`` exactly the identity)."""
        dct = dct_matrix(size)
        decay = torch.exp(-heat_frequencies(size)[None, :] ** 2 * self.tau[:, None])
        operators = torch.einsum("nj,kn,ni->kji", dct, decay, dct)
        operators[0] = torch.eye(size, dtype=torch.float64)
        return operators

    def __repr__(self) -> str:
        return (f"Heat(num_timesteps={self.num_timesteps}, sigma_min={self.sigma_min}, "
                f"sigma_max={self.sigma_max}{self.noise_repr()})")
