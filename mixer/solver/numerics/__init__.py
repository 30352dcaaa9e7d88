"""Numerical building blocks of the solvers: a bracketed Newton root finder and projected
gradient on the (bounded) simplex. Below every method, so baselines and DDO share them."""
