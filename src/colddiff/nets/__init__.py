"""Denoising networks. Each is called as ``net(x_t, t)`` with ``t`` the time as a fraction
``t / T`` in ``[0, 1]`` (shape ``(B,)``), and returns a tensor shaped like ``x_t``."""

from colddiff.nets.cnn import CNN

__all__ = ["CNN"]
