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
    if len(x) < 2:
        raise ValueError("PCA needs at least two examples")
    rows = x.reshape(len(x), -1)
    n, d = rows.shape
    if n * d > _PCA_SVD_MAX and n > 2 * d:
        return _pca_by_covariance(rows, k)
    flat = rows.to(torch.float64)
    mean = flat.mean(dim=0)
    _, s, vt = torch.linalg.svd(flat - mean, full_matrices=False)
    variances = s**2 / len(flat)
    total = float(variances.sum())
    k = len(s) if k is None else int(k)
    return PCAResult(mean.float(), vt[:k].float(), variances[:k].float(), total)


#: Above this many numbers (e.g. MNIST's 60,000 x 784) ``pca`` of a tall matrix uses the
#: covariance, accumulated in blocks, instead of the SVD of a float64 copy of the data,
#: which would need several copies of the data set in memory at once.
_PCA_SVD_MAX = 20_000_000


def _pca_by_covariance(rows: torch.Tensor, k: int | None, block: int = 8192) -> PCAResult:
    """PCA from the eigendecomposition of the covariance (float64, accumulated block by block).

    Same result as the SVD route up to the signs of the components (fixed here so that the
    largest entry of each component is positive) and rounding.
    """
    n, d = rows.shape
    total_sum = torch.zeros(d, dtype=torch.float64)
    for start in range(0, n, block):
        total_sum += rows[start:start + block].to(torch.float64).sum(dim=0)
    mean = total_sum / n
    cov = torch.zeros(d, d, dtype=torch.float64)
    for start in range(0, n, block):
        centred = rows[start:start + block].to(torch.float64) - mean
        cov += centred.T @ centred
    cov /= n
    evals, evecs = torch.linalg.eigh(cov)
    variances = evals.flip(0).clamp_min(0.0)
    components = evecs.flip(1).T
    signs = torch.sign(components.gather(1, components.abs().argmax(dim=1, keepdim=True)))
    components = components * signs
    k = d if k is None else int(k)
    return PCAResult(mean.float(), components[:k].float(), variances[:k].float(), float(cov.trace()))


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


# --------------------------------------------------------------------------- disentanglement (β-VAE chapter)


def _as_numpy(t) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def discretize(z: torch.Tensor | np.ndarray, bins: int = 20) -> np.ndarray:
    """Bin each column of ``z`` (shape ``(N, J)``) into ``bins`` equal-width bins over its range.

    Returns int64 bin indices of the same shape. A constant column falls in bin 0.
    This is the discretisation used by the histogram estimator of mutual information
    in the disentanglement literature (20 bins, as in Locatello et al. 2019).
    """
    z = _as_numpy(z).astype(np.float64)
    if z.ndim != 2:
        raise ValueError(f"discretize needs a matrix (N, J) of codes, got shape {z.shape}")
    if not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"bins must be an int >= 2, got {bins!r}")
    if not np.isfinite(z).all():
        raise ValueError("the codes contain NaN or infinite values")
    lo, hi = z.min(axis=0), z.max(axis=0)
    width = np.where(hi > lo, hi - lo, 1.0)
    codes = np.floor((z - lo) / width * bins).astype(np.int64)
    return np.clip(codes, 0, bins - 1)


def _labels(a: np.ndarray) -> np.ndarray:
    """Map any 1-D array of discrete values to 0..K-1."""
    return np.unique(a, return_inverse=True)[1].reshape(-1)


def entropy_discrete(a: torch.Tensor | np.ndarray) -> float:
    """Plug-in entropy (nats) of a discrete variable from its samples ``a`` (shape ``(N,)``)."""
    counts = np.bincount(_labels(_as_numpy(a).reshape(-1)))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def mutual_information_discrete(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Plug-in mutual information (nats) of two discrete variables from paired samples.

    ``I(a; b) = sum_{i,j} p(i, j) log(p(i, j) / (p(i) p(j)))`` with the probabilities
    replaced by frequencies in the contingency table. It is biased upwards, by about
    ``(I - 1)(J - 1) / (2N)`` nats for independent variables with ``I`` and ``J`` values.
    """
    a, b = _labels(_as_numpy(a).reshape(-1)), _labels(_as_numpy(b).reshape(-1))
    if len(a) != len(b):
        raise ValueError(f"a and b must be paired samples of equal length, got {len(a)} and {len(b)}")
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1.0)
    joint /= len(a)
    pa, pb = joint.sum(axis=1, keepdims=True), joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum())


def mutual_information_matrix(z: torch.Tensor | np.ndarray, factors: torch.Tensor | np.ndarray,
                              bins: int = 20) -> np.ndarray:
    """``I(z_j; v_k)`` in nats for every latent ``j`` (rows) and factor ``k`` (columns).

    ``z``: continuous codes ``(N, J)``, discretised with :func:`discretize`;
    ``factors``: discrete factor values or indices ``(N, K)``.
    """
    codes = discretize(z, bins)
    v = _as_numpy(factors)
    if v.ndim != 2 or len(v) != len(codes):
        raise ValueError(f"factors must have shape (N, K) with N = {len(codes)} (one row per code), "
                         f"got {v.shape}")
    return np.array([[mutual_information_discrete(codes[:, j], v[:, k]) for k in range(v.shape[1])]
                     for j in range(codes.shape[1])])


@dataclass(frozen=True)
class MIGResult:
    """The mutual information gap and what it is made of.

    Attributes:
        score: MIG, the mean over factors of ``gaps``; between 0 and 1.
        gaps: per factor, ``(I(z_a; v_k) - I(z_b; v_k)) / H(v_k)`` for the latents
            ``a`` and ``b`` with the largest and second-largest information about ``v_k``.
        mi: the matrix ``I(z_j; v_k)`` (nats), latents by factors.
        entropies: ``H(v_k)`` (nats) per factor.
        top: per factor, the latent ``a`` that carries most information about it.
    """

    score: float
    gaps: np.ndarray
    mi: np.ndarray
    entropies: np.ndarray
    top: np.ndarray


def mig(z: torch.Tensor | np.ndarray, factors: torch.Tensor | np.ndarray, bins: int = 20) -> MIGResult:
    """Mutual information gap (Chen et al. 2018) of codes ``z`` ``(N, J)`` for factors ``(N, K)``.

    For each factor ``v_k``: sort the latents by ``I(z_j; v_k)``, take the gap between the
    first and the second, and divide by ``H(v_k)``; MIG is the mean over factors. It is
    near 1 when each factor is captured by one latent alone, and near 0 when no latent
    tells about a factor more than another one does.

    The estimator is the discretised (histogram) one common in the literature: each
    latent (use the posterior means) is binned into ``bins`` equal-width bins and the
    mutual information of the two discrete variables is computed by
    :func:`mutual_information_discrete`. (Chen et al. instead estimate ``I`` from the
    encoder's distribution ``q(z_j|x)``; the two agree only roughly.)
    """
    v = _as_numpy(factors)
    zz = _as_numpy(z)
    if zz.ndim != 2 or zz.shape[1] < 2:
        raise ValueError(f"MIG needs codes (N, J) with at least two latents, got shape {zz.shape}")
    mi = mutual_information_matrix(zz, v, bins)
    entropies = np.array([entropy_discrete(v[:, k]) for k in range(v.shape[1])])
    if (entropies <= 0).any():
        k = int(np.argmin(entropies))
        raise ValueError(f"factor {k} takes a single value in these data, so its entropy is 0 and MIG "
                         "is undefined; drop that column")
    ordered = np.sort(mi, axis=0)[::-1]
    gaps = (ordered[0] - ordered[1]) / entropies
    return MIGResult(float(gaps.mean()), gaps, mi, entropies, mi.argmax(axis=0))


def active_latents(mu: torch.Tensor | np.ndarray, threshold: float = 0.01) -> tuple[int, np.ndarray]:
    """Number of active units of a VAE's code, and the activity of each (Burda et al. 2016).

    (Not to be confused with :func:`active_units`, the L0 of a sparse code.)

    The activity of latent ``j`` is ``Var_x( E_q[z_j | x] )``, the variance over the data
    of its posterior mean; ``mu`` holds those means, shape ``(N, J)``. A latent whose
    activity is below ``threshold`` ignores its input: its posterior is (nearly) the same
    for every ``x``, typically the prior, so it carries no information.
    """
    m = _as_numpy(mu).astype(np.float64)
    if m.ndim != 2 or len(m) < 2:
        raise ValueError(f"active_latents needs posterior means of shape (N, J) with N >= 2, got {m.shape}")
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    activity = m.var(axis=0)
    return int((activity > threshold).sum()), activity


# --------------------------------------------------------------------------- log-likelihood (VAE chapter)

_LOG_2PI = float(np.log(2 * np.pi))


def log_importance_weights(model: torch.nn.Module, x: torch.Tensor, k: int, *, proposal: str = "encoder",
                           sigma: float = 1.0, generator: torch.Generator | None = None,
                           q: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """``log w_k = log p(x, z_k) - log r(z_k)`` for ``k`` draws ``z_k ~ r``, shape ``(N, k)``.

    ``r`` is the encoder's ``q(z|x)`` (``proposal="encoder"``) or the prior ``N(0, I)``
    (``proposal="prior"``, then ``log w = log p(x|z)``). ``model`` is a VAE
    (``encode -> (mu, logvar)``, ``decode``, ``likelihood``); a Gaussian decoder uses the model's
    ``log_sigma`` if it has one, else ``sigma``. Each ``w_k`` is an unbiased estimate of ``p(x)``.
    ``q = (mu, logvar)`` replaces the encoder's output by given Gaussian parameters.
    """
    from aecourse.objectives import nll

    if proposal not in ("encoder", "prior"):
        raise ValueError(f"proposal must be 'encoder' or 'prior', got {proposal!r}")
    if not (isinstance(k, int) and k >= 1):
        raise ValueError(f"k must be a positive int, got {k!r}")
    dev = next(model.parameters()).device
    x = x.to(dev)
    n = len(x)
    with torch.no_grad():
        mu, logvar = model.encode(x) if q is None else (q[0].to(dev), q[1].to(dev))
        m = mu.shape[1]
        eps = torch.randn(n, k, m, generator=generator).to(dev, mu.dtype) if generator is not None \
            else torch.randn(n, k, m, device=dev, dtype=mu.dtype)
        log_normal_eps = -0.5 * (eps**2 + _LOG_2PI).sum(-1)
        if proposal == "encoder":
            std = (0.5 * logvar).exp().unsqueeze(1)
            z = mu.unsqueeze(1) + std * eps
            log_r = log_normal_eps - 0.5 * logvar.sum(-1, keepdim=True)
            log_prior = -0.5 * (z**2 + _LOG_2PI).sum(-1)
        else:
            z = eps
            log_r = log_prior = log_normal_eps
        out = model.decode(z.reshape(n * k, m))
        xk = x.unsqueeze(1).expand(n, k, *x.shape[1:]).reshape(n * k, *x.shape[1:])
        s = model.log_sigma.exp() if hasattr(model, "log_sigma") else sigma
        log_lik = -nll(model.likelihood, out.reshape(xk.shape), xk, s).reshape(n, k)
    return log_lik + log_prior - log_r


def importance_weighted_bound(model: torch.nn.Module, x: torch.Tensor, k: int, *, proposal: str = "encoder",
                              sigma: float = 1.0, batch_rows: int = 4096,
                              generator: torch.Generator | None = None,
                              q: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """The importance-weighted bound ``L_k = E log (1/k sum_j w_j) <= log p(x)`` (Burda et al. 2016), per example.

    One estimate per example of shape ``(N,)``, in nats. ``L_1`` is the ELBO; ``L_k`` never
    decreases with ``k`` and tends to ``log p(x)`` as ``k`` grows. Examples are processed in
    chunks of about ``batch_rows`` decoder evaluations to bound memory. ``q = (mu, logvar)``
    replaces the encoder's Gaussian as the proposal (a better proposal gives a tighter bound).
    """
    per_chunk = max(1, batch_rows // k)
    out = []
    for start in range(0, len(x), per_chunk):
        qq = None if q is None else (q[0][start:start + per_chunk], q[1][start:start + per_chunk])
        lw = log_importance_weights(model, x[start:start + per_chunk], k, proposal=proposal, sigma=sigma,
                                    generator=generator, q=qq)
        out.append((torch.logsumexp(lw, dim=1) - float(np.log(k))).cpu())
    return torch.cat(out)


def elbo_estimate(model: torch.nn.Module, x: torch.Tensor, k: int = 100, *, sigma: float = 1.0,
                  q: tuple[torch.Tensor, torch.Tensor] | None = None, batch_rows: int = 4096,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """The ELBO ``E_q log (p(x, z) / q(z|x))`` per example, averaged over ``k`` samples (nats, shape ``(N,)``).

    ``q`` defaults to the encoder's; pass ``(mu, logvar)`` to evaluate other Gaussian posteriors.
    """
    per_chunk = max(1, batch_rows // k)
    out = []
    for start in range(0, len(x), per_chunk):
        qq = None if q is None else (q[0][start:start + per_chunk], q[1][start:start + per_chunk])
        lw = log_importance_weights(model, x[start:start + per_chunk], k, sigma=sigma, generator=generator, q=qq)
        out.append(lw.mean(dim=1).cpu())
    return torch.cat(out)


def optimise_local_posteriors(model: torch.nn.Module, x: torch.Tensor, *, steps: int = 200, samples: int = 8,
                              lr: float = 0.05, sigma: float = 1.0,
                              seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example Gaussian posteriors ``q_n = N(mu_n, diag(exp(logvar_n)))`` fitted by maximising each ELBO.

    This is classical (non-amortised) variational inference with the decoder held fixed:
    each example gets its own ``2 M`` parameters, started at the encoder's output and improved
    by Adam on a ``samples``-sample reparameterised ELBO. The ELBO they reach, minus the
    encoder's, is the *amortisation gap* (Cremer et al. 2018). Returns ``(mu, logvar)``.
    """
    from aecourse.objectives import kl_standard_normal, nll

    dev = next(model.parameters()).device
    x = x.to(dev)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        mu0, lv0 = model.encode(x)
    mu, lv = mu0.detach().clone().requires_grad_(True), lv0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([mu, lv], lr=lr)
    n, m = mu.shape
    s = model.log_sigma.exp().detach() if hasattr(model, "log_sigma") else sigma
    xk = x.unsqueeze(1).expand(n, samples, *x.shape[1:]).reshape(n * samples, *x.shape[1:])
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for _ in range(steps):
            eps = torch.randn(n, samples, m, generator=gen).to(dev)
            z = mu.unsqueeze(1) + (0.5 * lv).exp().unsqueeze(1) * eps
            rec = nll(model.likelihood, model.decode(z.reshape(n * samples, m)).reshape(xk.shape), xk, s)
            loss = rec.reshape(n, samples).mean(1).sum() + kl_standard_normal(mu, lv).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
    return mu.detach(), lv.detach()


# --------------------------------------------------------------------------- deep autoencoders chapter


def reconstruction_errors(reconstruct, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Per-example squared error ``||r(x) - x||^2`` (summed over pixels) of a reconstruction function.

    ``reconstruct`` is any callable from a batch to reconstructions of the same shape: a
    model, or e.g. ``lambda x: p.reconstruct(x, k)`` for PCA. Runs without gradients, in
    batches, on the model's device if it is a module; returns a CPU tensor of shape ``(N,)``.
    """
    if len(x) == 0:
        raise ValueError("reconstruction_errors needs at least one example")
    dev = next(reconstruct.parameters()).device if isinstance(reconstruct, torch.nn.Module) else x.device
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size].to(dev)
            rb = reconstruct(xb)
            if rb.shape != xb.shape:
                raise ValueError(f"the reconstruction has shape {tuple(rb.shape)} but the input has "
                                 f"{tuple(xb.shape)}; reconstruct(x) must return x's shape")
            out.append((rb - xb).pow(2).reshape(len(xb), -1).sum(dim=1).cpu())
    return torch.cat(out)


def nearest_neighbours(x: torch.Tensor, reference: torch.Tensor, batch_size: int = 256
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of ``x``, the squared Euclidean distance to the nearest row of ``reference``, and its index.

    Both are flattened to rows first (images ``(N, 1, 28, 28)`` become ``(N, 784)``).
    Computed in blocks of ``batch_size`` queries, so memory stays at
    ``batch_size x len(reference)`` distances. Returns ``(distances, indices)``, shape ``(N,)``.
    """
    a = x.reshape(len(x), -1).float()
    b = reference.reshape(len(reference), -1).float()
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x has {a.shape[1]} values per example but reference has {b.shape[1]}")
    if len(b) == 0:
        raise ValueError("the reference set is empty")
    b_sq = b.pow(2).sum(dim=1)
    dists, idx = [], []
    for start in range(0, len(a), batch_size):
        q = a[start:start + batch_size]
        # ||q - b||^2 = ||q||^2 - 2 q.b + ||b||^2, clamped at 0 against rounding
        d = (q.pow(2).sum(dim=1, keepdim=True) - 2 * q @ b.T + b_sq).clamp_min(0)
        best = d.min(dim=1)
        dists.append(best.values)
        idx.append(best.indices)
    return torch.cat(dists), torch.cat(idx)


def knn_accuracy(train_codes: torch.Tensor, y_train: torch.Tensor, test_codes: torch.Tensor,
                 y_test: torch.Tensor, k: int = 5) -> float:
    """Held-out accuracy of a ``k``-nearest-neighbour classifier in code space (majority vote).

    Unlike a linear probe it rewards codes whose classes form separate clusters of any
    shape, which is what a scatter plot of a 2-D code shows. Ties go to the smallest label.
    """
    if not 1 <= k <= len(train_codes):
        raise ValueError(f"k must be between 1 and the number of training codes ({len(train_codes)}), got {k}")
    if len(train_codes) != len(y_train) or len(test_codes) != len(y_test):
        raise ValueError("each code needs one label: lengths of codes and labels differ")
    a = test_codes.reshape(len(test_codes), -1).float()
    b = train_codes.reshape(len(train_codes), -1).float()
    y_train = torch.as_tensor(y_train).long()
    n_classes = int(y_train.max()) + 1
    correct = 0
    for start in range(0, len(a), 512):
        d = torch.cdist(a[start:start + 512], b)
        nearest = d.topk(k, dim=1, largest=False).indices
        votes = torch.nn.functional.one_hot(y_train[nearest], n_classes).sum(dim=1)
        pred = votes.argmax(dim=1)
        correct += int((pred == torch.as_tensor(y_test[start:start + 512]).long()).sum())
    return correct / len(a)


# --------------------------------------------------------------------------- sparse codes


def _code_matrix(z: torch.Tensor) -> torch.Tensor:
    if not isinstance(z, torch.Tensor):
        z = torch.as_tensor(np.asarray(z))
    if z.dim() < 2 or len(z) == 0:
        raise ValueError(f"codes must have shape (N, M) with N >= 1 examples, got {tuple(z.shape)}")
    return z.detach().reshape(len(z), -1)


def unit_frequencies(z: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """For each unit ``j``, the fraction of examples on which it is *active*: ``z[n, j] > threshold``.

    With ReLU or top-k codes, ``threshold=0`` counts exact zeros as inactive. A sigmoid
    unit is never exactly zero, so it needs a positive threshold. Shape ``(M,)``.
    """
    return (_code_matrix(z) > threshold).float().mean(dim=0)


def active_units(z: torch.Tensor, threshold: float = 0.0) -> float:
    """The mean over examples of the number of active units (``z[n, j] > threshold``): the code's L0."""
    return float((_code_matrix(z) > threshold).float().sum(dim=1).mean())


def dead_units(z: torch.Tensor, threshold: float = 0.0) -> int:
    """The number of units active on *none* of the examples in ``z``: units the model never uses."""
    return int((unit_frequencies(z, threshold) == 0).sum())


# --------------------------------------------------------------------------- sparse autoencoders: features


def feature_roughness(features: torch.Tensor, shape: tuple[int, int] = (28, 28)) -> torch.Tensor:
    """How noisy each feature image is: ``sum (neighbour differences)^2 / sum (pixels)^2``.

    ``features`` has one flattened image per row, shape ``(K, H*W)``. The numerator sums
    the squared differences between horizontally and vertically adjacent pixels. A
    constant image scores 0; smooth strokes score little; white noise scores about 4
    (each pixel has about two neighbour pairs, and a difference of two independent
    pixels has twice their variance). Shape ``(K,)``.
    """
    f = _code_matrix(features).float()
    h, w = shape
    if f.shape[1] != h * w:
        raise ValueError(f"features have {f.shape[1]} entries per row but shape {shape} needs {h * w}")
    img = f.reshape(len(f), h, w)
    diffs = (img[:, 1:, :] - img[:, :-1, :]).pow(2).sum(dim=(1, 2)) + (img[:, :, 1:] - img[:, :, :-1]).pow(2).sum(dim=(1, 2))
    return diffs / img.pow(2).sum(dim=(1, 2)).clamp_min(1e-12)


# --------------------------------------------------------------------------- linear autoencoders (linear PCA chapter)


def covariance(p: PCAResult) -> torch.Tensor:
    """The sample covariance ``V^T diag(variances) V`` (float64) rebuilt from a full :func:`pca`.

    ``p`` must hold every component with non-zero variance (``pca(x)`` without ``k``).
    """
    v = p.components.to(torch.float64)
    return v.T @ (p.variances.to(torch.float64)[:, None] * v)


def linear_ae_loss(W1: torch.Tensor, W2: torch.Tensor, cov: torch.Tensor, lam: float = 0.0) -> torch.Tensor:
    """The loss of a linear autoencoder with weights ``W1`` ``(k, D)``, ``W2`` ``(D, k)`` and the best biases.

    With the biases chosen optimally the mean is reconstructed exactly, and the mean
    squared error (summed over dimensions) depends only on ``W = W2 W1`` and the
    covariance ``C``: ``tr((I - W) C (I - W)^T)``. Plus ``lam (||W1||^2 + ||W2||^2)``.
    Differentiable in ``W1`` and ``W2`` (used to probe the loss landscape).
    """
    d = cov.shape[0]
    if W1.ndim != 2 or W2.ndim != 2 or W1.shape[1] != d or W2.shape != (d, W1.shape[0]):
        raise ValueError(f"expected W1 (k, {d}) and W2 ({d}, k) for a {d}x{d} covariance, "
                         f"got {tuple(W1.shape)} and {tuple(W2.shape)}")
    W1, W2, cov = W1.to(torch.float64), W2.to(torch.float64), cov.to(torch.float64)
    w1c = W1 @ cov
    loss = torch.trace(cov) - 2 * (w1c * W2.T).sum() + ((w1c @ W1.T) * (W2.T @ W2)).sum()
    return loss + lam * (W1.pow(2).sum() + W2.pow(2).sum())


@dataclass(frozen=True)
class WeightDecayOptimum:
    """The global minimum of ``mean ||x - W2 W1 x||^2 + lam (||W1||^2 + ||W2||^2)`` (centred data).

    Attributes:
        singular_values: the ``k`` singular values of ``W2`` (and of ``W1 = W2^T``) at the
            minimum, ``sqrt(max(0, 1 - lam / sigma_i^2))`` for the top ``k`` variances.
        loss: the minimal value of the regularised loss.
        reconstruction: the reconstruction error at the minimum.
    """

    singular_values: torch.Tensor
    loss: float
    reconstruction: float


def weight_decay_optimum(p: PCAResult, k: int, lam: float) -> WeightDecayOptimum:
    """Closed-form minimum of the weight-decayed linear autoencoder (Kunin et al. 2019).

    Per principal direction the product ``W2 W1`` keeps a factor ``q_i = 1 - lam / sigma_i^2``
    (0 if negative), at a reconstruction cost ``sigma_i^2 (1 - q_i)^2`` and a penalty
    ``2 lam q_i``; directions beyond the ``k``-th cost their full variance.
    """
    if not (isinstance(k, int) and 1 <= k <= len(p.variances)):
        raise ValueError(f"k must be an int between 1 and {len(p.variances)}, got {k!r}")
    if not lam >= 0:
        raise ValueError(f"lam must be non-negative, got {lam!r}")
    var = p.variances[:k].to(torch.float64)
    q = (1 - lam / var).clamp(min=0.0)
    discarded = p.total_variance - float(var.sum())
    rec = discarded + float((var * (1 - q) ** 2).sum())
    return WeightDecayOptimum(q.sqrt().float(), rec + float(2 * lam * q.sum()), rec)


def principal_directions_from_decoder(W2: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Recover ordered, orthonormal principal directions from a linear decoder's weights.

    The columns of ``W2`` (``(D, k)``) span the learned subspace but are mixed by an
    unknown invertible matrix. Orthonormalise them (QR), project the centred data
    ``x`` onto that basis, and diagonalise the ``k x k`` covariance of the projections:
    its eigenvectors rotate the basis into the principal directions.

    Returns ``(directions, variances)``: rows ``(k, D)`` and the variances along them,
    in decreasing order. Each direction's sign is arbitrary.
    """
    flat = x.reshape(len(x), -1)
    if W2.ndim != 2 or W2.shape[0] != flat.shape[1]:
        raise ValueError(f"W2 must have shape (D, k) with D = {flat.shape[1]}, got {tuple(W2.shape)}")
    q, _ = torch.linalg.qr(W2.to(torch.float64))
    # project first, centre after: Q^T (x - mean) = Q^T x - mean of Q^T x; needs only (N, k) extra memory
    y = (flat @ q.to(flat.dtype)).to(torch.float64)
    y = y - y.mean(dim=0)
    evals, evecs = torch.linalg.eigh(y.T @ y / len(flat))
    order = evals.argsort(descending=True)
    return (q @ evecs[:, order]).T.float(), evals[order].float()


def direction_cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``|cos|`` of the angle between row ``i`` of ``a`` and row ``i`` of ``b`` (signs ignored)."""
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"expected two matrices of directions as rows, of equal shape; got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a.to(torch.float64), b.to(torch.float64)
    cos = (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1))
    return cos.abs().float()


def best_affine_decoder_error(h: torch.Tensor, x: torch.Tensor, chunk: int = 8192) -> float:
    """The least reconstruction error of any affine decoder ``x_hat = B h + c`` from the codes ``h``.

    ``h``: codes, shape ``(N, k)``, computed by any encoder at all (nonlinear, random...);
    ``x``: the data, ``(N, ...)``. The decoder is the least-squares fit, so this is the
    best that any affine decoder can do with these codes. It can never be below the
    rank-``k`` PCA error: every reconstruction lies in one ``k``-dimensional affine subspace.
    Returns the mean over examples of the squared error summed over dimensions.

    The fit projects the centred data onto the span of the centred codes, through an
    orthonormal basis of that span from an SVD of the ``(N, k)`` codes (accurate even when
    the codes are nearly collinear). The data are visited in chunks of rows, in float64,
    so MNIST-sized data need little memory.
    """
    flat = x.reshape(len(x), -1)
    if h.ndim != 2 or len(h) != len(flat):
        raise ValueError(f"h must hold one code per example, shape ({len(flat)}, k); got {tuple(h.shape)}")
    n, d = flat.shape
    hc = h.to(torch.float64) - h.to(torch.float64).mean(dim=0)
    u, sv, _ = torch.linalg.svd(hc, full_matrices=False)
    u = u[:, sv > sv.max() * max(hc.shape) * torch.finfo(torch.float64).eps] if sv.max() > 0 else u[:, :0]
    mean_x = torch.zeros(d, dtype=torch.float64)
    for i in range(0, n, chunk):
        mean_x += flat[i:i + chunk].to(torch.float64).sum(dim=0)
    mean_x /= n
    sxx = 0.0
    proj = torch.zeros(u.shape[1], d, dtype=torch.float64)
    for i in range(0, n, chunk):
        xb = flat[i:i + chunk].to(torch.float64) - mean_x
        sxx += float(xb.pow(2).sum())
        proj += u[i:i + chunk].T @ xb
    return (sxx - float(proj.pow(2).sum())) / n


# --------------------------------------------------------------------------- cost: FLOPs and time


def count_flops(fn, *args, **kwargs) -> int:
    """Floating-point operations of ``fn(*args, **kwargs)``, counted by ``torch.utils.flop_counter``.

    The counter records matrix products and convolutions only, at **two FLOPs per
    multiply-add** (a product ``(m x k) @ (k x n)`` counts ``2mkn``); element-wise
    work (normalisation, softmax, activations, biases) is not counted. Runs without
    gradients.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn(*args, **kwargs)
    return int(counter.get_total_flops())


def seconds_per_call(fn, *args, threads: int = 1, min_run_time: float = 0.2, **kwargs) -> float:
    """Wall-clock seconds of the fastest of repeated calls ``fn(*args, **kwargs)``, without
    gradients, on ``threads`` CPU threads.

    One warm-up call, then calls for at least ``min_run_time`` seconds (and at least
    three). Other programs on the machine can only slow a call down, so the fastest
    call is the best estimate of the cost itself. One thread makes timings less
    noisy and comparable; the number of threads is restored afterwards.
    """
    import time

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            fn(*args, **kwargs)
            times: list[float] = []
            while len(times) < 3 or sum(times) < min_run_time:
                start = time.perf_counter()
                fn(*args, **kwargs)
                times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(old)
    return min(times)


def fastest_seconds_per_call(fns: dict, *, rounds: int = 3, threads: int = 1,
                             min_run_time: float = 0.2) -> dict:
    """For each ``name: fn`` (a function of no arguments), the fastest call over ``rounds``
    interleaved rounds of :func:`seconds_per_call`.

    Interleaving spreads slow periods of a shared machine over all the candidates
    instead of one.
    """
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = min(best[name], seconds_per_call(fn, threads=threads, min_run_time=min_run_time))
    return best


# --------------------------------------------------------------------------- denoising chapter


@dataclass(frozen=True)
class FieldAgreement:
    """How well a learned vector field ``u`` matches a reference field ``v`` at ``n`` points.

    Attributes:
        cosine: the mean over the points of ``cos angle(u_i, v_i)`` (1 = same directions everywhere).
        relative_error: ``sqrt(sum_i ||u_i - v_i||^2 / sum_i ||v_i||^2)`` (0 = identical fields).
        mean_error: ``mean_i ||u_i - v_i||``, in the units of the fields.
        n: the number of points.

    If the points are samples from a density ``q``, both are Monte Carlo estimates of
    ``q``-weighted averages over the plane.
    """

    cosine: float
    relative_error: float
    mean_error: float
    n: int


def _check_fields(learned: torch.Tensor, exact: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    u = torch.as_tensor(learned, dtype=torch.float64)
    v = torch.as_tensor(exact, dtype=torch.float64)
    if u.ndim != 2 or u.shape != v.shape:
        raise ValueError(f"the two fields must be matrices of the same shape (n_points, dim), got "
                         f"{tuple(u.shape)} and {tuple(v.shape)}")
    if len(u) == 0:
        raise ValueError("the fields are empty: evaluate them at one point at least")
    if not (torch.isfinite(u).all() and torch.isfinite(v).all()):
        raise ValueError("a field contains NaN or infinite values")
    return u, v


def field_cosines(learned: torch.Tensor, exact: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``cos angle(u_i, v_i)`` at every point (shape ``(n,)``); 0 where either vector is zero."""
    u, v = _check_fields(learned, exact)
    norms = u.norm(dim=1) * v.norm(dim=1)
    return torch.where(norms > eps, (u * v).sum(dim=1) / norms.clamp_min(eps), torch.zeros_like(norms)).float()


def field_agreement(learned: torch.Tensor, exact: torch.Tensor) -> FieldAgreement:
    """Mean cosine and relative error between two vector fields evaluated at the same points.

    To weight the plane by a density ``q`` (for a denoiser: the noisy density ``p_sigma``),
    evaluate both fields at samples from ``q``.
    """
    u, v = _check_fields(learned, exact)
    denom = float(v.pow(2).sum())
    if denom == 0:
        raise ValueError("the reference field is zero at every point, so a relative error is undefined")
    rel = float(((u - v).pow(2).sum() / denom).sqrt())
    return FieldAgreement(cosine=float(field_cosines(u, v).mean()), relative_error=rel,
                          mean_error=float((u - v).norm(dim=1).mean()), n=len(u))


def gaussian_blur(x: torch.Tensor, std: float) -> torch.Tensor:
    """Blur images ``(N, 1, H, W)`` with a Gaussian of standard deviation ``std`` pixels.

    A baseline denoiser. The kernel (radius ``ceil(3 std)``) is normalised to sum to one
    and the image edges are extended by replication, so a constant image is unchanged.
    ``std = 0`` returns a copy.
    """
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"gaussian_blur takes images of shape (N, 1, H, W), got {tuple(x.shape)}")
    if not std >= 0:
        raise ValueError(f"std must be >= 0 (in pixels), got {std!r}")
    if std == 0:
        return x.clone()
    radius = max(1, int(np.ceil(3 * std)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / std) ** 2)
    k = k / k.sum()
    pad = torch.nn.functional.pad(x, (radius, radius, radius, radius), mode="replicate")
    out = torch.nn.functional.conv2d(pad, k.reshape(1, 1, 1, -1))
    return torch.nn.functional.conv2d(out, k.reshape(1, 1, -1, 1))


def best_denoiser(candidates: dict, x_clean: torch.Tensor, x_noisy: torch.Tensor) -> tuple[str, float]:
    """The candidate ``name -> fn(x_noisy)`` with the least mean squared error (summed per example).

    Used to tune a baseline's setting (a blur width, a number of principal components) on
    training images before it is compared on held-out ones. Returns ``(name, error)``.
    """
    if not candidates:
        raise ValueError("best_denoiser needs at least one candidate")
    errors = {name: float((fn(x_noisy) - x_clean).pow(2).reshape(len(x_clean), -1).sum(dim=1).mean())
              for name, fn in candidates.items()}
    name = min(errors, key=errors.get)
    return name, errors[name]

def mode_counts(samples: torch.Tensor, means: torch.Tensor, radius: float) -> tuple[torch.Tensor, float]:
    """How many ``samples`` lie within ``radius`` of each mode in ``means`` ``(K, d)``.

    Returns ``(counts, fraction)``: the counts per mode (shape ``(K,)``; a sample is given
    to its nearest mode) and the fraction of all samples within ``radius`` of some mode.
    """
    samples = torch.as_tensor(samples, dtype=torch.float32)
    means = torch.as_tensor(means, dtype=torch.float32)
    if samples.ndim != 2 or means.ndim != 2 or samples.shape[1] != means.shape[1]:
        raise ValueError(f"samples (n, d) and means (K, d) must be matrices with the same d, got "
                         f"{tuple(samples.shape)} and {tuple(means.shape)}")
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius!r}")
    dist, nearest = torch.cdist(samples, means).min(dim=1)
    near = dist <= radius
    counts = torch.bincount(nearest[near], minlength=len(means))
    return counts, float(near.float().mean())


def denoising_baselines(pca_result: PCAResult, *, scale: float = 1.0,
                        ks: tuple[int, ...] = (4, 8, 16, 32, 64),
                        stds: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 2.0)) -> dict[str, dict]:
    """Two families of simple image denoisers, for :func:`best_denoiser` to tune.

    ``"PCA"``: orthogonal projection onto the mean plus the top-``k`` principal subspace;
    ``"blur"``: a Gaussian blur of ``std`` pixels. Both first multiply the input by
    ``scale`` (use ``1 / (1 - fraction)`` for masking noise, which shrinks the expected
    image by ``1 - fraction``) and clip the result to the pixel range [0, 1].
    Returns ``{"PCA": {name: fn}, "blur": {name: fn}}``.
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")

    def project(k: int):
        return lambda x: pca_result.reconstruct(scale * x, k).clamp(0, 1)

    def blur(s: float):
        return lambda x: gaussian_blur(scale * x, s).clamp(0, 1)

    return {"PCA": {f"PCA, k = {k}": project(k) for k in ks if k <= len(pca_result.components)},
            "blur": {f"blur, {s:g} px": blur(s) for s in stds}}


def fixed_points(step, x0: torch.Tensor, n_iter: int = 200, tol: float = 0.2) -> torch.Tensor:
    """Where repeated application ``x <- step(x)`` takes the points ``x0``: the distinct end points.

    Two end points closer than ``tol`` count as one. With ``step`` the optimal denoiser,
    these are the sinks of the field ``sigma^2 grad log p_sigma``: the modes of ``p_sigma``.
    """
    x = torch.as_tensor(x0, dtype=torch.float32)
    for _ in range(n_iter):
        x = step(x)
    centres: list[torch.Tensor] = []
    for q in x:
        if all(float((q - c).norm()) > tol for c in centres):
            centres.append(q)
    return torch.stack(centres)
