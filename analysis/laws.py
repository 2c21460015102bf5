"""The scaling laws the fits return: plain frozen dataclasses whose fields are floats, or arrays of
bootstrap draws (each method then broadcasts over them).

    PowerLaw(A, alpha)                  L(C) = A C^-alpha (the paper's form)
    SaturatingPowerLaw(E, A, alpha)     L(C) = E + A C^-alpha
    ChinchillaLaw(E, A, B, alpha, beta) L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PowerLaw:
    """L(C) = A * C^-alpha, the paper's form. Fields are floats, or arrays of bootstrap draws."""

    A: Any  # loss at C = 1 compute unit
    alpha: Any  # decay exponent, > 0

    def loss(self, compute: Any) -> Any:
        return self.A * np.asarray(compute, dtype=float) ** -self.alpha

    def compute_for(self, loss: Any) -> Any:
        """The compute at which this law reaches ``loss`` (its inverse)."""
        return (self.A / np.asarray(loss, dtype=float)) ** (1.0 / self.alpha)

    def local_exponent(self, compute: Any) -> Any:
        """-d log L / d log C at ``compute`` (constant for a pure power law)."""
        return self.alpha + 0.0 * np.asarray(compute, dtype=float)


@dataclass(frozen=True)
class SaturatingPowerLaw:
    """L(C) = E + A * C^-alpha. Fields are floats, or arrays of bootstrap draws."""

    E: Any  # irreducible loss, nats/token
    A: Any  # reducible loss at C = 1 compute unit
    alpha: Any

    def loss(self, compute: Any) -> Any:
        return self.E + self.A * np.asarray(compute, dtype=float) ** -self.alpha

    def compute_for(self, loss: Any) -> Any:
        """Inverse of ``loss``; +inf at or below the floor E (the law never gets there)."""
        gap = np.asarray(loss, dtype=float) - self.E
        with np.errstate(divide="ignore", invalid="ignore"):
            c = (self.A / gap) ** (1.0 / self.alpha)
        return np.where(gap > 0, c, np.inf)

    def local_exponent(self, compute: Any) -> Any:
        c = np.asarray(compute, dtype=float)
        reducible = self.A * c ** -self.alpha
        return self.alpha * reducible / (self.E + reducible)


@dataclass(frozen=True)
class ChinchillaLaw:
    """L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022, eq. 2)."""

    E: Any
    A: Any
    B: Any
    alpha: Any
    beta: Any

    def loss(self, n_params: Any, tokens: Any) -> Any:
        n, d = np.asarray(n_params, dtype=float), np.asarray(tokens, dtype=float)
        return self.E + self.A * n ** -self.alpha + self.B * d ** -self.beta

    @property
    def n_opt_exponent(self) -> Any:
        """a in N_opt ∝ C^a: beta / (alpha + beta) (Hoffmann et al. 2022, eq. 4)."""
        return self.beta / (self.alpha + self.beta)

    def optimal_allocation(self, compute_flops: Any, flops_per_param_token: float = 6.0) -> tuple[Any, Any]:
        """(N_opt, D_opt) minimising L under C = k N D (k = 6 in the Chinchilla convention)."""
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))
        nd = np.asarray(compute_flops, dtype=float) / flops_per_param_token
        n = g * nd ** self.n_opt_exponent
        return n, nd / n
