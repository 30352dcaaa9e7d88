"""Simulated sweeps and studies from known laws: the calibration benchmark's ground truth, and
`mixer solve power`'s way to size a sweep before paying for it.

- `sweeps`: one DDO sweep from known per-domain curves, fitted and judged as `mixer solve ddo` does;
- `scales`: whole AutoScale studies (a sweep at every scale, AutoScale to a target) from one law in tokens.
"""
