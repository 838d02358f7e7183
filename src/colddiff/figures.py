"""Deprecated location: the reference study moved to :mod:`colddiff.study.figures`.

``from colddiff import figures`` keeps working (with a ``DeprecationWarning``) for scripts that used it.
"""

import sys
import warnings

from colddiff.study import figures as _moved

warnings.warn("colddiff.figures moved to colddiff.study.figures", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
