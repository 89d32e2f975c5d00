"""``python -m diffusion_lessons`` is the same as the ``diffusion-lessons`` command."""

from .cli import main

main()
