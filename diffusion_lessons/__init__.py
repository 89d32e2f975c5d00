"""diffusion-lessons: learn diffusion models by building a class-conditional DDPM for
digits.

Each numbered module is one lesson and one chapter of the course (see ``LESSONS``): a
learner reads ``docs/lessons/NN-*.md`` and runs ``python -m
diffusion_lessons.lessonNN_*`` (or ``diffusion-lessons run N``) to see the same figures
appear on their own CPU.
"""

__version__ = "0.1.0"

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
    7: ("lesson07_evaluation", "Evaluation: a classifier, a Fréchet distance and CLIP"),
    8: ("lesson08_guidance", "Classifier-free guidance"),
    9: ("lesson09_going_further", "Going further: diffusers and many processes"),
}
