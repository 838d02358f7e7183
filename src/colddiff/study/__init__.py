"""Studies run as applications of the library.

* :mod:`~colddiff.study.reference` trains and scores the reference study's four models and
  :mod:`~colddiff.study.figures` draws its 14 figures;
* :mod:`~colddiff.study.bansal` runs Bansal et al.'s MNIST restoration study (blur, inpainting,
  super-resolution: degraded / direct / sampled by FMD, SSIM, PSNR, RMSE);
* :mod:`~colddiff.study.generation` trains the cold-generation recipes (issue 24) at equal
  compute and scores their samples (FMD ratio, class spread) beside Gaussian diffusion;
* :mod:`~colddiff.study.runner` runs any of them in its folder (resuming, redrawing), as
  ``colddiff reproduce [--study report|bansal-mnist|cold-generation]`` does; see the
  "Reproducing the studies" guide;
* :mod:`~colddiff.study.plotting` and :mod:`~colddiff.study.strips` are what their figures share,
  :mod:`~colddiff.study.models` what the studies of one model per folder share.

Import the submodule you need (``from colddiff.study import bansal``): importing this package
imports none of them.
"""

__all__ = ["bansal", "figures", "generation", "models", "plotting", "reference", "runner", "strips"]
