"""ntk-theory: Gaussian moments, NTK theory kernels and NTK-LC compression."""
__version__ = "0.1.0"
