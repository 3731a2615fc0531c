"""Pooling a CNN's feature maps to one vector: average, max and generalised mean (GeM).

Pure tensor functions shared by the torch extractor (:mod:`search_lab.features.cnn`) and the
exported graphs of the other engines (:mod:`search_lab.features.engines`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from search_lab.core import require_choice

if TYPE_CHECKING:
    import torch

FC_INPUT = 224  # fully connected layers take this fixed square input
POOLINGS = ("avg", "max", "gem")


def gem(x: torch.Tensor, p: float = 3.0, eps: float = 1e-6) -> torch.Tensor:
    """Generalised-mean pooling over the spatial axes.

    ``(mean(clamp(x, min=eps) ** p)) ** (1 / p)``: ``p = 1`` is average pooling and ``p -> inf``
    tends to max pooling. Computed as ``m * mean((x / m) ** p) ** (1 / p)`` with ``m`` the
    per-channel maximum, which is the same value but cannot overflow for large ``p``.

    Parameters
    ----------
    x : torch.Tensor, shape (N, C, H, W)
        Feature maps.
    p : float
        Pooling exponent, > 0.
    eps : float
        Lower clamp, keeps the power defined for non-positive activations.

    Returns
    -------
    torch.Tensor, shape (N, C)
    """
    x = x.clamp(min=eps)
    peak = x.amax(dim=(-2, -1), keepdim=True)
    pooled = (x / peak).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)
    return pooled * peak[..., 0, 0]


def pool(x: torch.Tensor, method: str, p: float = 3.0) -> torch.Tensor:
    """Pool (N, C, H, W) feature maps to (N, C) with ``method`` in :data:`POOLINGS`."""
    poolings = {
        "avg": lambda: x.mean(dim=(-2, -1)),
        "max": lambda: x.amax(dim=(-2, -1)),
        "gem": lambda: gem(x, p),
    }
    return poolings[require_choice("cnn: pooling", method, POOLINGS)]()
