"""DoReMi (Xie et al. 2023): Group DRO domain weights from a proxy's and a reference model's
per-domain losses.

    alpha' = alpha * exp(eta * max(L_proxy - L_ref, 0));  alpha = (1 - c) alpha'/sum(alpha') + c/m

The answer is the average of alpha over the steps. `doremi_weights` replays logged losses (pure
arrays); `DoReMiWeights` is the same update, one step at a time, for a trainer's loop; with
`per_token_excess` and `update_excess` it is the official implementation's step (excess clipped
per token, then averaged per domain), which `mixer loop doremi` runs inside the proxy's training.

A domain with no token in a step keeps the score it had (sangmichaelxie/doremi,
`doremi/trainer.py` `update_domain_weights`, lines 251-256): scoring it 0 instead would push
the weight towards the domains that happen to be drawn, so with a skewed mixture and small
batches the largest domain would take almost everything even when every domain has the same
excess. Scores start at `initial_score` (the official code starts them at log(vocabulary
size), `doremi/train.py` line 273; `mixer loop doremi` passes that).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from mixer.core.errors import MixerError


@dataclass(frozen=True)
class DoReMiResult:
    x: np.ndarray             # averaged weights (the answer)
    trajectory: np.ndarray    # (steps, m) weights after each step
    fun: float                # mean over steps of the weighted excess loss
    success: bool
    message: str
    iterations: int


def _step(alpha: np.ndarray, excess: np.ndarray, eta: float, smoothing: float) -> np.ndarray:
    log_a = np.log(alpha) + eta * np.maximum(excess, 0.0)
    a = np.exp(log_a - log_a.max())
    return (1.0 - smoothing) * a / a.sum() + smoothing / a.size


def _check(eta: float, smoothing: float) -> None:
    if not (np.isfinite(eta) and eta > 0):
        raise ValueError(f"eta must be positive, got {eta}")
    if not 0 <= smoothing <= 1:
        raise ValueError(f"smoothing must be in [0, 1], got {smoothing}")


def _carry(scores: np.ndarray, excess: np.ndarray) -> np.ndarray:
    """The step's scores: a domain without tokens (NaN) keeps its previous score."""
    return np.where(np.isnan(excess), scores, excess)


def doremi_weights(proxy_losses, reference_losses, *, eta: float = 1.0, smoothing: float = 1e-3,
                   init=None, initial_score: float = 0.0) -> DoReMiResult:
    """Replay of DoReMi over per-step, per-domain losses: arrays of shape (steps, m). A NaN proxy
    loss marks a domain with no tokens in that step: it keeps its last score (`initial_score`
    before its first)."""
    P = np.asarray(proxy_losses, float)
    R = np.asarray(reference_losses, float)
    if R.ndim == 1:
        R = np.broadcast_to(R, P.shape)   # a reference's final losses, constant over steps
    if P.ndim != 2 or P.shape != R.shape or P.shape[0] == 0:
        raise ValueError(f"losses must be (steps, domains) of equal shape, got {P.shape} and {R.shape}")
    if np.any(np.isinf(P)) or not np.all(np.isfinite(R)):
        raise ValueError("losses contain NaN or inf (a NaN proxy loss is allowed: no tokens in that step)")
    _check(eta, smoothing)
    m = P.shape[1]
    alpha = np.full(m, 1.0 / m) if init is None else np.asarray(init, float) / np.sum(init)
    scores = np.full(m, float(initial_score))
    traj = np.empty_like(P)
    fun = 0.0
    for s in range(P.shape[0]):
        excess = scores = _carry(scores, P[s] - R[s])
        alpha = _step(alpha, excess, eta, smoothing)
        traj[s] = alpha
        fun += float(alpha @ np.maximum(excess, 0.0))
    x = traj.mean(axis=0)
    return DoReMiResult(x=x / x.sum(), trajectory=traj, fun=fun / P.shape[0], success=True,
                        message=f"{P.shape[0]} steps", iterations=P.shape[0])


class DoReMiWeights:
    """Online DoReMi: call `update(proxy_losses, reference_losses)` each step; sample by the
    returned weights; `average_` is the final answer. `state_dict()` for checkpoints. A NaN
    excess (or proxy loss) is a domain with no tokens in the step: it keeps its last score
    (`scores_`, starting at `initial_score`), as the official `update_domain_weights` does."""

    def __init__(self, *, domains: Sequence[str], eta: float = 1.0, smoothing: float = 1e-3,
                 init: Mapping[str, float] | None = None, initial_score: float = 0.0):
        self.domains = tuple(domains)
        self.eta = eta
        self.smoothing = smoothing
        self.init = init
        _check(eta, smoothing)
        if not np.isfinite(initial_score):
            raise ValueError(f"initial_score must be finite, got {initial_score}")
        m = len(self.domains)
        w = np.full(m, 1.0 / m) if init is None else np.array([init[d] for d in self.domains], float)
        self.weights_ = w / w.sum()
        self.scores_ = np.full(m, float(initial_score))
        self.sum_ = np.zeros(m)
        self.n_steps_ = 0

    def _vec(self, losses, what: str) -> np.ndarray:
        if isinstance(losses, Mapping):
            missing = [d for d in self.domains if d not in losses]
            if missing:
                raise ValueError(f"{what}: no loss for domain {missing[0]!r}")
            losses = [losses[d] for d in self.domains]
        v = np.asarray(losses, float)
        if v.shape != (len(self.domains),) or np.any(np.isinf(v)):
            raise ValueError(f"{what}: expected {len(self.domains)} losses (NaN: no tokens), got {v!r}")
        return v

    def _advance(self, excess: np.ndarray) -> np.ndarray:
        self.scores_ = _carry(self.scores_, excess)
        self.weights_ = _step(self.weights_, self.scores_, self.eta, self.smoothing)
        self.sum_ += self.weights_
        self.n_steps_ += 1
        return self.weights_

    def update_excess(self, excess) -> np.ndarray:
        """One step from per-domain excess losses already clipped (`per_token_excess`): the form
        of the official implementation, which clips each token's excess before the domain mean."""
        return self._advance(self._vec(excess, "excess"))

    def update(self, proxy_losses, reference_losses) -> np.ndarray:
        ref = self._vec(reference_losses, "reference_losses")
        if np.any(np.isnan(ref)):
            raise ValueError(f"reference_losses: expected finite losses, got {ref!r}")
        return self._advance(self._vec(proxy_losses, "proxy_losses") - ref)

    @property
    def average_(self) -> dict[str, float]:
        avg = self.sum_ / max(self.n_steps_, 1) if self.n_steps_ else self.weights_
        return dict(zip(self.domains, map(float, avg / avg.sum())))

    def state_dict(self) -> dict:
        return {"weights": self.weights_.tolist(), "sum": self.sum_.tolist(), "n_steps": self.n_steps_,
                "scores": self.scores_.tolist()}

    def load_state_dict(self, state: Mapping) -> None:
        self.weights_ = np.asarray(state["weights"], float)
        if "scores" in state:
            self.scores_ = np.asarray(state["scores"], float)
        self.sum_ = np.asarray(state["sum"], float)
        self.n_steps_ = int(state["n_steps"])


def per_token_excess(proxy_loss, reference_loss, domain, counted, n_domains: int) -> np.ndarray:
    """Per-domain mean of max(proxy − reference, 0) over each domain's scored tokens (the clip is
    per token, as in the official implementation); NaN for a domain with no token in the step
    (`DoReMiWeights` then keeps that domain's last score)."""
    p, r = np.asarray(proxy_loss, float), np.asarray(reference_loss, float)
    d, c = np.asarray(domain, np.int64), np.asarray(counted, float)
    if not (p.shape == r.shape == d.shape == c.shape and p.ndim == 1):
        raise ValueError(f"per-token arrays must be 1-D of one length, got {p.shape}, {r.shape}, {d.shape}, {c.shape}")
    clipped = np.maximum(p - r, 0.0) * c
    sums = np.bincount(d, weights=clipped, minlength=n_domains)
    cnt = np.bincount(d, weights=c, minlength=n_domains)
    return np.divide(sums, cnt, out=np.full(n_domains, np.nan), where=cnt > 0)


def aligned_histories(proxy, reference) -> tuple[list[str], np.ndarray, np.ndarray]:
    """`(domains, P, R)` from two `mixer.solver.runs.Run`: the proxy's and the reference's per-step, per-domain losses as
    `[steps, domains]` arrays, ready for `doremi_weights`.

    A reference without a log contributes its final loss at every step. A domain with no tokens
    at a step (null in either log) is NaN in P there, so the replay keeps its last score; each
    problem is one `MixerError` naming the run file.
    """
    domains = list(proxy.domains)
    if set(reference.domains) != set(domains):
        raise MixerError(f"{reference.path}: its domains differ from {proxy.path}; use a reference of the same corpus")
    if not proxy.loss_history:
        raise MixerError(f"{proxy.path}: no loss_history (per-step, per-domain losses); DoReMi needs the proxy's log")

    def history(run) -> np.ndarray:
        rows = [run.loss_history.get(d) for d in domains]
        if any(r is None for r in rows) or len({len(r) for r in rows}) != 1:
            raise MixerError(f"{run.path}: loss_history needs one equally long list per domain")
        return np.array([[np.nan if v is None else v for v in r] for r in rows], float).T  # null: no tokens

    P = history(proxy)
    R = history(reference) if reference.loss_history else np.array([reference.final_loss[d] for d in domains])
    if R.ndim == 2 and R.shape != P.shape:
        raise MixerError(f"{reference.path}: loss_history has {R.shape[0]} steps, the proxy {P.shape[0]}; "
                         "log the same steps")
    R = np.broadcast_to(R, P.shape)
    P = np.where(np.isnan(R), np.nan, P)   # a domain not seen at a step: NaN, its last score is kept
    R = np.where(np.isnan(R), 0.0, R)
    return domains, P, R
