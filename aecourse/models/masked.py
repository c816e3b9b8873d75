"""A masked autoencoder (MAE, He et al. 2022): a small Vision Transformer that sees a few patches.

The lineage: a denoising autoencoder corrupts its input and learns to undo the
corruption. Here the corruption is *masking*: the image is cut into patches,
most of them are removed, and the model predicts the removed ones from the rest.

Reading order, top to bottom:

1. :func:`patchify` / :func:`unpatchify`: an image <-> a sequence of flattened patches.
2. :func:`random_masking`: which patches each image keeps (a fixed number, seeded).
3. :class:`Block`: one pre-norm transformer layer (attention written out, so the
   cost of each matrix product is visible).
4. :class:`MaskedAutoencoder`: the encoder runs on the *visible* tokens only; a
   lighter decoder receives them plus a shared learned *mask token* at every
   removed position, with positional embeddings, and predicts every patch's pixels.
5. :func:`masked_patch_loss`: squared error on the masked patches only
   (optionally against per-patch normalised pixels).
6. :func:`layer_macs`: the cost model of one layer, checked against a FLOP counter
   in the tests.

Shapes: ``B`` images, ``N`` patches per image, ``P = p*p*C`` pixels per patch,
``d`` the encoder width, ``K`` the number of visible (kept) patches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from aecourse.models.base import Autoencoder

# --------------------------------------------------------------------------- patches


def _check_images(x: torch.Tensor, patch_size: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected images of shape (B, C, H, W), got {shape}; "
                         "add the channel axis with x.unsqueeze(1) for (B, H, W) images")
    if not isinstance(patch_size, int) or patch_size < 1:
        raise ValueError(f"patch_size must be a positive int, got {patch_size!r}")
    h, w = x.shape[-2:]
    if h % patch_size or w % patch_size:
        raise ValueError(f"images of {h}x{w} pixels cannot be cut into {patch_size}x{patch_size} patches; "
                         f"choose a patch size that divides both (for 28x28: 2, 4, 7, 14)")


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images ``(B, C, H, W)`` into patches ``(B, N, p*p*C)``.

    Patches are numbered row by row (left to right, then top to bottom); inside a
    patch the values are ordered channel, then row, then column.
    """
    _check_images(x, patch_size)
    b, c, h, w = x.shape
    p = patch_size
    x = x.reshape(b, c, h // p, p, w // p, p)          # (B, C, rows, p, cols, p)
    x = x.permute(0, 2, 4, 1, 3, 5)                    # (B, rows, cols, C, p, p)
    return x.reshape(b, (h // p) * (w // p), c * p * p)


def unpatchify(patches: torch.Tensor, patch_size: int, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """The inverse of :func:`patchify`: patches ``(B, N, p*p*C)`` back to images ``(B, C, H, W)``."""
    c, h, w = image_shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"images of {h}x{w} pixels cannot be made of {p}x{p} patches")
    rows, cols = h // p, w // p
    if patches.dim() != 3 or patches.shape[1:] != (rows * cols, c * p * p):
        raise ValueError(f"for {c}x{h}x{w} images and {p}x{p} patches expected patches of shape "
                         f"(B, {rows * cols}, {c * p * p}), got {tuple(patches.shape)}")
    x = patches.reshape(len(patches), rows, cols, c, p, p)
    x = x.permute(0, 3, 1, 4, 2, 5)                    # (B, C, rows, p, cols, p)
    return x.reshape(len(patches), c, h, w)


# --------------------------------------------------------------------------- masking


@dataclass(frozen=True)
class Masking:
    """Which patches each image keeps.

    Attributes:
        keep: indices of the visible patches, ``(B, K)`` (in random order).
        mask: ``(B, N)`` booleans, ``True`` where the patch is removed (masked).
    """

    keep: torch.Tensor
    mask: torch.Tensor

    @property
    def n_visible(self) -> int:
        return self.keep.shape[1]


def n_visible(n_patches: int, mask_ratio: float) -> int:
    """How many of ``n_patches`` stay visible: ``N - round(ratio * N)``, at least one."""
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio!r}: at least one patch must stay visible")
    return max(1, n_patches - round(mask_ratio * n_patches))


def random_masking(batch: int, n_patches: int, mask_ratio: float,
                   generator: torch.Generator | None = None, device: torch.device | str | None = None) -> Masking:
    """Mask the same number of patches, chosen uniformly at random, in each of ``batch`` images.

    Each image gets an independent random permutation of its patches (the argsort
    of uniform noise); the first ``K`` are kept. Pass a seeded ``generator`` for
    reproducible masks; without one the global torch seed decides (``fit`` sets it).
    The masks are drawn on the CPU (with a CPU generator) and moved to ``device``.
    """
    k = n_visible(n_patches, mask_ratio)
    noise = torch.rand(batch, n_patches, generator=generator)   # one uniform number per patch
    keep = noise.argsort(dim=1)[:, :k]                           # a random permutation, cut short
    mask = torch.ones(batch, n_patches, dtype=torch.bool)
    mask.scatter_(1, keep, False)
    if device is not None:
        keep, mask = keep.to(device), mask.to(device)
    return Masking(keep=keep, mask=mask)


def gather_tokens(tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``tokens[b, index[b, j], :]`` for every ``b, j``: pick tokens ``(B, N, d) -> (B, K, d)``."""
    return tokens.gather(1, index.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


# --------------------------------------------------------------------------- positions


def sincos_positions(grid: int, width: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine positional embeddings ``(grid*grid, width)``, as in MAE.

    Half the channels encode the patch's row, half its column, each with sines and
    cosines at geometrically spaced frequencies (the transformer's 1-D recipe per axis).
    """
    if width % 4:
        raise ValueError(f"width must be a multiple of 4 for 2-D sine-cosine positions, got {width}")
    quarter = width // 4
    freq = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float64),
                                torch.arange(grid, dtype=torch.float64), indexing="ij")

    def embed(pos: torch.Tensor) -> torch.Tensor:
        angle = pos.reshape(-1, 1) * freq
        return torch.cat([angle.sin(), angle.cos()], dim=1)

    return torch.cat([embed(rows), embed(cols)], dim=1).float()


# --------------------------------------------------------------------------- transformer


class Block(nn.Module):
    """One pre-norm transformer layer: ``x + Attn(LN(x))``, then ``x + MLP(LN(x))``.

    Multiply-adds per image for ``N`` tokens of width ``d`` (see :func:`layer_macs`):
    ``3Nd^2`` (queries, keys, values) + ``N^2 d`` (scores) + ``N^2 d`` (weighted sum of
    values) + ``Nd^2`` (output projection) + ``2 r N d^2`` (MLP of hidden width ``r d``).
    """

    def __init__(self, width: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} must be divisible by the number of heads {heads}")
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // self.heads)   # (B, heads, N, N)
        out = scores.softmax(dim=-1) @ v                                 # (B, heads, N, d/heads)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def layer_macs(n_tokens: int, width: int, mlp_ratio: int = 4) -> int:
    """Multiply-adds of one :class:`Block` on one image: ``(4 + 2r) N d^2 + 2 N^2 d``.

    With the usual ``r = 4`` this is ``12 N d^2 + 2 N^2 d``. A FLOP counter that
    counts one multiply-add as two FLOPs reports twice this. Normalisations,
    softmax, GELU, biases and residual additions are left out (they are
    ``O(N d)`` or ``O(N^2)``, negligible next to the matrix products).
    """
    n, d = int(n_tokens), int(width)
    return (4 + 2 * mlp_ratio) * n * d * d + 2 * n * n * d


# --------------------------------------------------------------------------- the model


class MaskedAutoencoder(Autoencoder):
    """A small ViT masked autoencoder for ``(B, C, H, W)`` images with square patches.

    The defaults are the chapter's model: 16 tokens of width 64, four encoder layers,
    a decoder half as wide with two layers (about 230,000 parameters).

    Args:
        input_shape: one image's shape, e.g. ``(1, 28, 28)`` (square images).
        patch_size: side of a patch; 4 gives 49 tokens for 28x28 images, 7 gives 16.
        width, depth, heads: the encoder transformer.
        decoder_width, decoder_depth, decoder_heads: the (lighter) decoder.
        mask_ratio: the fraction of patches removed by default in ``forward``.

    ``encode(x)`` returns one feature vector per image (the mean of the encoder's
    output tokens with every patch visible), the representation a linear probe
    reads. Training uses :meth:`predict`, which masks first.
    """

    def __init__(self, input_shape: tuple[int, int, int] = (1, 28, 28), patch_size: int = 7, *,
                 width: int = 64, depth: int = 4, heads: int = 4, decoder_width: int = 32,
                 decoder_depth: int = 2, decoder_heads: int = 2, mask_ratio: float = 0.75):
        super().__init__(input_shape)
        if len(self.input_shape) != 3 or self.input_shape[1] != self.input_shape[2]:
            raise ValueError(f"input_shape must be (C, H, W) with H == W, got {self.input_shape}")
        c, side, _ = self.input_shape
        if side % patch_size:
            raise ValueError(f"patch_size {patch_size} does not divide the image side {side}")
        n_visible(4, mask_ratio)  # validates the ratio
        self.patch_size = patch_size
        self.grid = side // patch_size
        self.n_patches = self.grid ** 2
        self.patch_dim = c * patch_size ** 2
        self.width = width
        self.code_dim = width
        self.mask_ratio = mask_ratio

        # Encoder: patch embedding + fixed positions, transformer on visible tokens only.
        self.embed = nn.Linear(self.patch_dim, width)
        self.register_buffer("pos", sincos_positions(self.grid, width), persistent=False)
        self.encoder = nn.Sequential(*[Block(width, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)

        # Decoder: narrower; mask tokens fill the removed positions; predicts pixels of every patch.
        self.to_decoder = nn.Linear(width, decoder_width)
        self.mask_token = nn.Parameter(torch.zeros(decoder_width))
        self.register_buffer("decoder_pos", sincos_positions(self.grid, decoder_width), persistent=False)
        self.decoder = nn.Sequential(*[Block(decoder_width, decoder_heads) for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(decoder_width)
        self.to_pixels = nn.Linear(decoder_width, self.patch_dim)
        nn.init.normal_(self.mask_token, std=0.02)

    # ----------------------------------------------------------------- pieces

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        return patchify(x.reshape(len(x), *self.input_shape), self.patch_size)

    def unpatchify(self, patches: torch.Tensor) -> torch.Tensor:
        return unpatchify(patches, self.patch_size, self.input_shape)  # type: ignore[arg-type]

    def encode_tokens(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Encoder output ``(B, K, d)`` for the patches ``keep`` ``(B, K)`` (default: all of them)."""
        self._flat(x)  # checks the shape
        patches, pos = self.patchify(x), self.pos.expand(len(x), -1, -1)   # (B, N, P), (B, N, d)
        if keep is not None:                                                # the removed patches are
            patches, pos = gather_tokens(patches, keep), gather_tokens(pos, keep)  # dropped: (B, K, .)
        return self.norm(self.encoder(self.embed(patches) + pos))

    def decode_tokens(self, tokens: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Predicted pixels ``(B, N, P)`` of every patch from the encoded visible tokens ``(B, K, d)``."""
        b = len(tokens)
        visible = self.to_decoder(tokens)                                   # (B, K, d_dec)
        full = self.mask_token.expand(b, self.n_patches, -1).clone()        # mask token everywhere...
        full.scatter_(1, keep.unsqueeze(-1).expand_as(visible), visible)    # ...except where visible
        return self.to_pixels(self.decoder_norm(self.decoder(full + self.decoder_pos)))

    def predict(self, x: torch.Tensor, mask_ratio: float | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, Masking]:
        """Mask ``x`` at random, encode the visible patches, decode all: ``(patches (B, N, P), Masking)``."""
        ratio = self.mask_ratio if mask_ratio is None else mask_ratio
        masking = random_masking(len(x), self.n_patches, ratio, generator, device=x.device)
        return self.decode_tokens(self.encode_tokens(x, masking.keep), masking.keep), masking

    # ----------------------------------------------------------------- the Autoencoder interface

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """One feature vector per image: the mean encoder output over all (unmasked) patches."""
        return self.encode_tokens(x).mean(dim=1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("a masked autoencoder's decoder reads the encoded visible tokens and their "
                                  "positions, not a pooled code: use model.predict(x) or model.reconstruct(x)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted image (every patch predicted by the decoder) at the default mask ratio."""
        pred, _ = self.predict(x)
        return self.unpatchify(pred).reshape(x.shape)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, mask_ratio: float | None = None,
                    generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Images for a figure: ``masked`` input (removed patches grey), ``reconstruction``
        (visible patches pasted back, masked ones predicted, clipped to [0, 1]), ``prediction``
        (all patches predicted) and the boolean ``mask`` ``(B, N)``."""
        pred, masking = self.predict(x, mask_ratio, generator)
        patches = self.patchify(x)
        m = masking.mask.unsqueeze(-1)
        masked = torch.where(m, torch.full_like(patches, 0.5), patches)
        pasted = torch.where(m, pred.clamp(0, 1), patches)
        shape = (len(x), *self.input_shape)
        return {"masked": self.unpatchify(masked).reshape(shape),
                "reconstruction": self.unpatchify(pasted).reshape(shape),
                "prediction": self.unpatchify(pred).reshape(shape), "mask": masking.mask}


# --------------------------------------------------------------------------- the loss


def normalise_patches(patches: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Each patch minus its mean, divided by its standard deviation (population variance + ``eps``)."""
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True, unbiased=False)
    return (patches - mean) / (var + eps).sqrt()


def masked_patch_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                      norm_pix: bool = False) -> torch.Tensor:
    """Squared error summed over the pixels of the *masked* patches of each image, averaged over images.

    Args:
        pred, target: ``(B, N, P)`` predicted and true patches.
        mask: ``(B, N)`` booleans, ``True`` for removed patches; visible ones do not count.
        norm_pix: compare with per-patch normalised targets (:func:`normalise_patches`).
    """
    if pred.shape != target.shape or mask.shape != pred.shape[:2]:
        raise ValueError(f"pred {tuple(pred.shape)}, target {tuple(target.shape)} and mask {tuple(mask.shape)} "
                         "must be (B, N, P), (B, N, P) and (B, N)")
    if norm_pix:
        target = normalise_patches(target)
    per_patch = (pred - target).pow(2).sum(dim=-1)            # (B, N)
    return (per_patch * mask.to(per_patch.dtype)).sum(dim=1).mean()
