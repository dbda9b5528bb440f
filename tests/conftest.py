import os
import sys

sys.path.insert(0, os.path.dirname(__file__))


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
