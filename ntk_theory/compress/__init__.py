"""NTK-LC compression: quantized families, α-matching solvers, compressed networks (THEORY.md §6)."""

from .families import AUTO_ORDER, AlphaTargets, parse_family
from .solve import LayerFit, relative_residuals, solve_alpha, solve_auto

__all__ = ["AUTO_ORDER", "AlphaTargets", "parse_family", "LayerFit", "relative_residuals",
           "solve_alpha", "solve_auto"]
