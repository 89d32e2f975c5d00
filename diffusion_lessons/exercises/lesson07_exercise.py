"""Lesson 07 exercise: the Fréchet distance.

Chapter: docs/lessons/07-classifier.md

Write the function below (task 7.1), then check it:

    diffusion-lessons check 7 lesson07_exercise.py

PASS / FAIL (with a counterexample and a hint) / TODO per property; a body that still
raises NotImplementedError is a TODO. See every property with `diffusion-lessons check 7
--list`.

    (7.3)   FD = ||mu_1 - mu_2||^2 + tr Sigma_1 + tr Sigma_2 - 2 tr (Sigma_1^1/2 Sigma_2
                Sigma_1^1/2)^1/2
    tr (Sigma_1^1/2 Sigma_2 Sigma_1^1/2)^1/2 = sum_k sqrt(lambda_k),  lambda_k its
    eigenvalues (clamped at 0)  (eq. 7.4)

Keep your own experiments under `if __name__ == "__main__":` at the bottom: the checker
imports this file.
"""

from __future__ import annotations


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Task 7.1: eqs. 7.3-7.4, in float64, stable when a covariance is singular (fewer
    samples than dimensions).

    Args:
        mu1, mu2: means, (D,). sigma1, sigma2: covariances, (D, D), symmetric positive
            semi-definite.
    Returns:
        FD >= 0, a float.
    """
    # Sigma_1^1/2 from torch.linalg.eigh; the eigenvalues of the symmetric Sigma_1^1/2
    # Sigma_2 Sigma_1^1/2 from torch.linalg.eigvalsh. Clamp eigenvalues at 0 before
    # their square roots (round-off makes some < 0).
    raise NotImplementedError("Task 7.1: frechet_distance")


if __name__ == "__main__":
    pass
