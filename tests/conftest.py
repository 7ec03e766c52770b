"""Suite-wide settings."""

from hypothesis import settings

# No hypothesis deadline: a per-example time limit is a timed assertion, and on a shared
# 2-core machine it fails on load, not on behaviour (speed is the benchmarks' business).
settings.register_profile("ipvslab", deadline=None)
settings.load_profile("ipvslab")
