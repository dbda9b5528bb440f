import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

# The tests run NumPy as the command line does (ntk_theory/cli/__init__.py): without
# huge-page advice, which on this kind of virtual machine costs more system time than the
# arithmetic of the arrays it backs.  Set before anything below imports NumPy; pytest-xdist
# workers inherit it.  A value set by whoever runs the tests wins.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")


# --- Hypothesis settings profiles (issue 5) ----------------------------------
# "ci" (default): few derandomized examples per property, no deadline;
# "thorough": many random examples (pytest --hypothesis-profile thorough).
try:
    from hypothesis import settings as _hyp_settings

    from ntk_theory.testing import register_profiles as _register_profiles
except ImportError:  # hypothesis is a test extra; tests that need it import it themselves
    pass
else:
    _register_profiles()
    _hyp_settings.load_profile(os.environ.get("NTK_HYPOTHESIS_PROFILE", "ci"))
