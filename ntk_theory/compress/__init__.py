"""NTK-LC compression (docs/reference.rst §6).

* :mod:`.families` — quantized activation families in scale-free coordinates;
* :mod:`.solve` — per-layer α-matching solvers (mpmath, deterministic);
* :mod:`.network` — the per-network plan :func:`compress_network` → :class:`CompressionResult`;
* :mod:`.weights` — sparse ternary weights, packed 2-bit storage and bit accounting;
* :mod:`.lattice` — exact realised scales when quantized activations feed sparse ternary
  weights (the pre-activations live on a lattice).
"""

from .families import AUTO_ORDER, AlphaTargets, parse_family, stored_parameter_count
from .lattice import LatticeReport, lattice_layer_moments
from .network import CompressionResult, DenseLayer, compress_network, dense_layer_moments
from .solve import LayerFit, relative_residuals, solve_alpha, solve_auto
from .weights import (
    TernaryWeights,
    bit_accounting,
    load_npz,
    pack_ternary,
    save_npz,
    ternary_entropy_bits,
    ternary_weights,
    unpack_ternary,
)

__all__ = [
    "AUTO_ORDER", "AlphaTargets", "parse_family", "stored_parameter_count", "LayerFit", "relative_residuals",
    "solve_alpha", "solve_auto", "CompressionResult", "DenseLayer", "compress_network",
    "dense_layer_moments", "TernaryWeights", "bit_accounting", "load_npz", "pack_ternary",
    "save_npz", "ternary_entropy_bits", "ternary_weights", "unpack_ternary",
    "LatticeReport", "lattice_layer_moments",
]
