"""Studies run as applications of the library.

* :mod:`~colddiff.study.reference` trains and scores the reference study's four models and
  :mod:`~colddiff.study.figures` draws its 14 figures;
* :mod:`~colddiff.study.bansal` runs Bansal et al.'s MNIST restoration study (blur, inpainting,
  super-resolution: degraded / direct / sampled by FMD, SSIM, PSNR, RMSE);
* :mod:`~colddiff.study.runner` runs either in its folder (resuming, redrawing), as
  ``colddiff reproduce [--study report|bansal-mnist]`` does; see the "Reproducing the studies"
  guide;
* :mod:`~colddiff.study.plotting` and :mod:`~colddiff.study.strips` are what their figures share.

Import the submodule you need (``from colddiff.study import bansal``): importing this package
imports none of them.
"""

__all__ = ["bansal", "figures", "plotting", "reference", "runner", "strips"]
