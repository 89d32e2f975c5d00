"""Shared test settings: offline, few threads, a private cache, hypothesis profiles."""

import os

# CLIP hub look-ups fail at once instead of retrying ~46 s
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# the tests use the bundled digits, never a download
os.environ.setdefault("DIFFUSION_LESSONS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402
from hypothesis import settings  # noqa: E402

torch.set_num_threads(int(os.environ.get("TEST_THREADS", "2")))
settings.register_profile("default", deadline=None, max_examples=30)
settings.register_profile("ci", deadline=None, max_examples=30, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")
