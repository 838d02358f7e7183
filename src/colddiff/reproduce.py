"""Deprecated location: the reference study moved to :mod:`colddiff.study.reproduce`.

``from colddiff import reproduce`` keeps working (with a ``DeprecationWarning``) for scripts that used it.
"""

import sys
import warnings

from colddiff.study import reproduce as _moved

warnings.warn("colddiff.reproduce moved to colddiff.study.reproduce", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
