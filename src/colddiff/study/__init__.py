"""The reference study, as an application of the library: :mod:`~colddiff.study.reproduce`
trains and scores its four models, :mod:`~colddiff.study.figures` draws its 14 figures.

``colddiff reproduce`` runs both; see the "Reproducing the reference study" guide.
"""

from colddiff.study import figures, reproduce

__all__ = ["figures", "reproduce"]
