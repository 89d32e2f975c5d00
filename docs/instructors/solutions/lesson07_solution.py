"""Lesson 07 reference solution: the Fréchet distance.

Chapter: docs/lessons/07-classifier.md

The exercise template (``diffusion-lessons check 7 --template lesson07_exercise.py``)
with task 7.1 done, written here rather than imported from the course. Check it:

    diffusion-lessons check 7 docs/instructors/solutions/lesson07_solution.py

    (7.3)   FD = ||mu_1 - mu_2||^2 + tr Sigma_1 + tr Sigma_2 - 2 tr (Sigma_1^1/2 Sigma_2
                Sigma_1^1/2)^1/2
    tr (Sigma_1^1/2 Sigma_2 Sigma_1^1/2)^1/2 = sum_k sqrt(lambda_k),  lambda_k its
    eigenvalues (clamped at 0)  (eq. 7.4)
"""

from __future__ import annotations

import torch


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Task 7.1: eqs. 7.3-7.4, in float64, stable when a covariance is singular (fewer
    samples than dimensions).

    Args:
        mu1, mu2: means, (D,). sigma1, sigma2: covariances, (D, D), symmetric positive
            semi-definite.
    Returns:
        FD >= 0, a float.
    """
    mu1 = torch.as_tensor(mu1, dtype=torch.float64)  # (D,)
    mu2 = torch.as_tensor(mu2, dtype=torch.float64)  # (D,)
    sigma1 = torch.as_tensor(sigma1, dtype=torch.float64)  # (D, D)
    sigma2 = torch.as_tensor(sigma2, dtype=torch.float64)  # (D, D)
    # Sigma_1^1/2 = V diag(sqrt(lambda)) V^T from the eigendecomposition of Sigma_1
    lam, V = torch.linalg.eigh(sigma1)  # (D,), (D, D)
    sqrt_sigma1 = V @ torch.diag(lam.clamp(min=0).sqrt()) @ V.T  # (D, D)
    # Sigma_1^1/2 Sigma_2 Sigma_1^1/2 is symmetric PSD: its eigenvalues are >= 0
    m = sqrt_sigma1 @ sigma2 @ sqrt_sigma1  # (D, D)
    m = (m + m.T) / 2  # symmetric also after round-off
    tr_sqrt = torch.linalg.eigvalsh(m).clamp(min=0).sqrt().sum()  # eq. 7.4
    # eq. 7.3
    fd = ((mu1 - mu2) ** 2).sum() + sigma1.trace() + sigma2.trace() - 2 * tr_sqrt
    return max(fd.item(), 0.0)  # round-off can give a tiny negative number


if __name__ == "__main__":
    eye = torch.eye(3)
    print(frechet_distance(torch.zeros(3), eye, torch.ones(3), 4 * eye))  # 3 + 3 = 6
