import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

# Let tests import their helpers (tests/pythons.py and friends) as plain modules.
sys.path.insert(0, str(Path(__file__).resolve().parent))

# One Hypothesis profile for every run. No deadlines and no too-slow check anywhere: a
# machine that stalls for a quarter of a second says nothing about the code. Under CI
# (.ci/run sets CI) the examples are derandomized, as in Hypothesis' own "ci" profile, so
# a run is repeatable; elsewhere they are random, to keep finding new cases.
_CI = bool(os.environ.get("CI"))
settings.register_profile(
    "flamekit",
    settings.get_profile("ci") if _CI else settings.get_profile("default"),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("flamekit")
