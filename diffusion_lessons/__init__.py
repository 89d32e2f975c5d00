"""diffusion-lessons: learn diffusion models by building a class-conditional DDPM for
digits.

Each numbered module is one lesson and one chapter of the course (see ``LESSONS``): a
learner reads ``docs/lessons/NN-*.md`` and runs ``python -m
diffusion_lessons.lessonNN_*`` (or ``diffusion-lessons run N``) to see the same figures
appear on their own CPU.
"""

__version__ = "0.1.0"


class CourseError(RuntimeError):
    """Bad input the course expects and explains: the command line prints the message
    (one line naming the problem and the fix) and exits with status 1.
    """


#: lesson number -> (module name inside this package, chapter title)
LESSONS: dict[int, tuple[str, str]] = {
    1: ("lesson01_forward_noise", "Forward noise: fading a digit into static"),
    2: ("lesson02_schedules", "Noise schedules: how fast to fade"),
    3: (
        "lesson03_embeddings",
        "Embeddings: telling the network the time and the digit",
    ),
    4: ("lesson04_unet", "The conditional U-Net with skip connections"),
    5: ("lesson05_training", "Training on a laptop CPU"),
    6: ("lesson06_sampling", "Sampling: DDPM and DDIM"),
    7: ("lesson07_classifier", "A digit classifier and the Fréchet distance"),
    8: ("lesson08_clip", "CLIP scoring and re-ranking"),
    9: ("lesson09_guidance", "Classifier-free guidance"),
    10: ("lesson10_going_further", "Going further: diffusers and many processes"),
}


def parse_lessons(spec: str) -> list[int]:
    """'1-4' -> [1, 2, 3, 4]; '1,3,5' -> [1, 3, 5]; 'all' -> every lesson."""
    if spec == "all":
        return sorted(LESSONS)
    chosen: list[int] = []
    try:
        for part in spec.split(","):
            lo, _, hi = part.partition("-")
            chosen.extend(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise SystemExit(
            f"Cannot read lessons {spec!r}: write e.g. 3, 1-4 or 1,3,5."
        ) from None
    unknown = sorted(set(chosen) - set(LESSONS))
    if unknown:
        raise SystemExit(
            f"No lesson {unknown}; the course has lessons "
            f"{min(LESSONS)}-{max(LESSONS)} (see: diffusion-lessons list)."
        )
    return sorted(set(chosen))


def lesson_module(n: int):
    """Import lesson ``n``'s module."""
    import importlib

    return importlib.import_module(f"diffusion_lessons.{LESSONS[n][0]}")
