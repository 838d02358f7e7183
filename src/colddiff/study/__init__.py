"""Studies run as applications of the library.

* :mod:`~colddiff.study.reproduce` trains and scores the reference study's four models and
  :mod:`~colddiff.study.figures` draws its 14 figures;
* :mod:`~colddiff.study.bansal` runs Bansal et al.'s MNIST restoration study (blur, inpainting,
  super-resolution: degraded / direct / sampled by FMD, SSIM, PSNR, RMSE).

``colddiff reproduce [--study report|bansal-mnist]`` runs them; see the "Reproducing the
studies" guide.
"""

from colddiff.study import bansal, figures, plotting, reproduce

__all__ = ["bansal", "figures", "plotting", "reproduce"]
