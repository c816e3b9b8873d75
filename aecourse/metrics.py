"""Metrics shared by several chapters: PCA, subspace angles, linear probes.

Chapter-specific metrics (score-field agreement, MIG, importance-sampled
log-likelihood, ...) live here too, each a short function with a docstring
that states what it computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class PCAResult:
    """PCA of a data matrix, from the SVD of the centred data.

    Attributes:
        mean: the data mean, shape ``(D,)``.
        components: principal directions as rows, shape ``(K, D)``, orthonormal,
            ordered by decreasing variance.
        variances: the eigenvalues of the sample covariance (divided by ``N``),
            shape ``(K,)``, decreasing.
        total_variance: the sum of all ``D`` eigenvalues (the trace of the covariance).
    """

    mean: torch.Tensor
    components: torch.Tensor
    variances: torch.Tensor
    total_variance: float

    def encode(self, x: torch.Tensor, k: int) -> torch.Tensor:
        return (x.reshape(len(x), -1) - self.mean) @ self.components[:k].T

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        k = z.shape[1]
        return z @ self.components[:k] + self.mean

    def reconstruct(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Orthogonal projection of ``x`` onto the mean plus the top-``k`` principal subspace."""
        return self.decode(self.encode(x, k)).reshape(x.shape)

    def optimal_error(self, k: int) -> float:
        """Eckart-Young: the least mean squared error (summed over dimensions) of any rank-``k``
        affine reconstruction of the training data is the sum of the discarded eigenvalues."""
        return float(self.total_variance - self.variances[:k].sum())


def pca(x: torch.Tensor, k: int | None = None) -> PCAResult:
    """PCA of the rows of ``x`` (any shape ``(N, ...)``, flattened), via the SVD of centred data.

    The covariance is normalised by ``N`` (not ``N - 1``) so that
    ``optimal_error`` is exactly the mean reconstruction error on ``x``.
    """
    flat = x.reshape(len(x), -1).to(torch.float64)
    if len(flat) < 2:
        raise ValueError("PCA needs at least two examples")
    mean = flat.mean(dim=0)
    _, s, vt = torch.linalg.svd(flat - mean, full_matrices=False)
    variances = s**2 / len(flat)
    total = float(variances.sum())
    k = len(s) if k is None else int(k)
    return PCAResult(mean.float(), vt[:k].float(), variances[:k].float(), total)


def principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Principal angles (radians, increasing) between the column spaces of ``a`` and ``b`` (``D x k``)."""
    qa, _ = torch.linalg.qr(a.to(torch.float64))
    qb, _ = torch.linalg.qr(b.to(torch.float64))
    cos = torch.linalg.svdvals(qa.T @ qb).clamp(-1.0, 1.0)
    return torch.arccos(cos).sort().values.float()


def linear_probe(train_features: torch.Tensor | np.ndarray, y_train, test_features, y_test,
                 *, max_iter: int = 1000, C: float = 1.0, seed: int = 0) -> float:
    """Held-out accuracy of a multinomial logistic regression trained on frozen features.

    Features are standardised with the training set's statistics first, so codes
    of different scales are compared fairly.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def arr(t):
        return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)

    xtr, xte = arr(train_features).reshape(len(y_train), -1), arr(test_features).reshape(len(y_test), -1)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, C=C, random_state=seed))
    clf.fit(xtr, arr(y_train))
    return float(clf.score(xte, arr(y_test)))
