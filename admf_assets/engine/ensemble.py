"""Ensemble weights over captured strategies, evaluated by REPLAY of their captured positions
(``engine.capture``): no indicator is recomputed, whatever the method.

Methods (``METHODS``):

* ``equal_weight``, ``inverse_volatility`` -- closed forms on the members' training returns;
* ``minimum_variance``, ``maximum_sharpe`` -- scipy SLSQP on the members' training mean and
  covariance (several starts for the non-convex Sharpe ratio);
* ``optuna`` (TPE; ``cmaes`` and ``nsga2`` pick Optuna's CMA-ES / NSGA-II samplers) --
  trials asked in batches, each batch replayed as ONE multi-ensemble ``replay`` call;
* ``differential_evolution`` -- scipy's, ``vectorized=True``: each generation is one replay call.

The samplers search raw scores in [0, 1]^K; :func:`project` maps every score vector to
weights that satisfy every constraint (:class:`Constraints`): members not ``eligible``
(dropped so that no two included members correlate above ``max_correlation``, or beyond
``max_members``) weigh 0; an included member weighs between ``min_weight`` and
``max_weight``; the weights add up to ``sum_weights``.  With ``min_weight > 0`` at most
``floor(sum / min_weight)`` members are included (those with the highest scores).

The objective (``sharpe_ratio`` ...) is computed on the replayed ensemble returns of the
training dates (costs, sizing and exit rules of the config included).  Optional
time-varying weights (:func:`weight_path`): per-regime weight vectors selected by a causal
regime label (with a confidence threshold), and a rebalance period over which the weights
drift with the members' returns.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .backtest import BacktestConfig, backtest_positions
from .capture import CapturedSignals, replay
from .metrics import TRADING_DAYS, metrics_arrays

__all__ = [
    "METHODS",
    "METHOD_ALIASES",
    "SAMPLER_METHODS",
    "Constraints",
    "EnsembleFit",
    "canonical_method",
    "eligible_members",
    "project",
    "check_weights",
    "fit_weights",
    "weight_path",
    "path_returns",
    "bootstrap_weights",
]

METHODS = ("equal_weight", "inverse_volatility", "minimum_variance", "maximum_sharpe", "optuna", "cmaes", "nsga2",
           "differential_evolution")
SAMPLER_METHODS = ("optuna", "cmaes", "nsga2", "differential_evolution")
METHOD_ALIASES = {"equal": "equal_weight", "equal_weights": "equal_weight", "uniform": "equal_weight",
                  "inverse_vol": "inverse_volatility", "inverse_variance": "inverse_volatility",
                  "min_variance": "minimum_variance", "minimum_volatility": "minimum_variance",
                  "max_sharpe": "maximum_sharpe", "mean_variance": "maximum_sharpe", "tangency": "maximum_sharpe",
                  "tpe": "optuna", "bayesian": "optuna", "optuna_tpe": "optuna", "cma_es": "cmaes",
                  "genetic": "nsga2", "nsga_ii": "nsga2", "de": "differential_evolution",
                  "weighted_average": "maximum_sharpe"}
_TOL = 1e-9


def canonical_method(name: str) -> str | None:
    key = str(name).strip().lower()
    return key if key in METHODS else METHOD_ALIASES.get(key)


@dataclass(frozen=True)
class Constraints:
    sum_weights: float = 1.0
    min_weight: float = 0.0
    max_weight: float = 1.0
    max_correlation: float | None = None
    max_members: int | None = None

    def max_included(self, n: int) -> int:
        """How many members may be included (min_weight x count <= sum)."""
        if self.min_weight > 0:
            n = min(n, int(math.floor(self.sum_weights / self.min_weight + 1e-9)))
        return n

    def feasible(self, n_eligible: int) -> str | None:
        """None, or why no weight vector over ``n_eligible`` members satisfies the constraints."""
        m = self.max_included(n_eligible)
        if m < 1:
            return f"no member can be included (min_weight {self.min_weight} > sum_weights {self.sum_weights})"
        if m * self.max_weight < self.sum_weights - _TOL:
            return (f"{m} includable member(s) x max_weight {self.max_weight} < sum_weights {self.sum_weights} "
                    f"({n_eligible} eligible after the correlation filter)")
        return None


def eligible_members(member_returns: np.ndarray, constraints: Constraints, ppy: int = TRADING_DAYS) -> np.ndarray:
    """Boolean mask of the members that may be included: greedy by training Sharpe ratio,
    skipping a member whose return correlation with an already kept one exceeds
    ``max_correlation``; at most ``max_members``.  ``member_returns``: (bars x K)."""
    R = np.asarray(member_returns, dtype=np.float64)
    K = R.shape[1]
    sharpe = metrics_arrays(R, ppy, which=["sharpe_ratio"])["sharpe_ratio"]
    order = np.argsort(-np.nan_to_num(sharpe, nan=-np.inf), kind="stable")
    sd = R.std(axis=0)
    live = sd > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        C = np.corrcoef(R, rowvar=False) if K > 1 else np.ones((1, 1))
    C = np.nan_to_num(np.atleast_2d(C), nan=0.0)
    keep: list[int] = []
    for k in order:
        if not live[k] and live.any():
            continue  # a member that never trades adds nothing
        if constraints.max_correlation is not None and any(C[k, j] > constraints.max_correlation for j in keep):
            continue
        keep.append(int(k))
        if constraints.max_members is not None and len(keep) >= constraints.max_members:
            break
    mask = np.zeros(K, dtype=bool)
    mask[keep] = True
    return mask


def _bounded_simplex(v: np.ndarray, total: float, lo: float, hi: float) -> np.ndarray:
    """Euclidean projection of each row of ``v`` onto {w: sum w = total, lo <= w <= hi}
    (bisection on the shift; vectorized over rows)."""
    a = (v - hi).min(axis=1) - 1.0
    b = (v - lo).max(axis=1) + 1.0
    for _ in range(60):
        mid = 0.5 * (a + b)
        s = np.clip(v - mid[:, None], lo, hi).sum(axis=1)
        big = s > total
        a = np.where(big, mid, a)
        b = np.where(big, b, mid)
    w = np.clip(v - (0.5 * (a + b))[:, None], lo, hi)
    # exact sum: spread the rounding residue over the members not at a bound
    resid = total - w.sum(axis=1)
    free = (w > lo + 1e-12) & (w < hi - 1e-12)
    nfree = free.sum(axis=1)
    adj = np.where(nfree > 0, resid / np.maximum(nfree, 1), 0.0)
    return np.clip(w + free * adj[:, None], lo, hi)


def project(scores: np.ndarray, eligible: np.ndarray, constraints: Constraints) -> np.ndarray:
    """Weights (E x K) satisfying every constraint from raw scores (E x K, any reals):
    the ``max_included`` highest-scoring eligible members are included and the scores of
    the included ones are projected onto the bounded simplex."""
    S = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    E, K = S.shape
    idx = np.flatnonzero(eligible)
    m = constraints.max_included(len(idx))
    why = constraints.feasible(len(idx))
    if why:
        raise ValueError(f"the weight constraints cannot be met: {why}")
    sub = S[:, idx]
    if m < len(idx):
        top = np.argsort(-sub, axis=1, kind="stable")[:, :m]
        inc = np.zeros_like(sub, dtype=bool)
        np.put_along_axis(inc, top, True, axis=1)
    else:
        inc = np.ones_like(sub, dtype=bool)
    W = np.zeros((E, K))
    # rows differ only in which members are included: project the included scores row by row
    # in one vectorized call by parking excluded members at +inf distance (then zeroing them)
    n_inc = inc.sum(axis=1)
    if np.all(n_inc == n_inc[0]):
        pick = np.where(inc)[1].reshape(E, n_inc[0])
        vals = np.take_along_axis(sub, pick, axis=1)
        proj = _bounded_simplex(vals, constraints.sum_weights, constraints.min_weight, constraints.max_weight)
        out = np.zeros_like(sub)
        np.put_along_axis(out, pick, proj, axis=1)
        W[:, idx] = out
    else:  # pragma: no cover - the count is fixed by construction
        for e in range(E):
            cols = idx[inc[e]]
            W[e, cols] = _bounded_simplex(S[e:e + 1, cols], constraints.sum_weights, constraints.min_weight,
                                          constraints.max_weight)[0]
    return W


def check_weights(W: np.ndarray, eligible: np.ndarray, constraints: Constraints, corr: np.ndarray | None = None,
                  tol: float = 1e-7) -> list[str]:
    """Every constraint a weight matrix (E x K) violates (empty: all satisfied)."""
    W = np.atleast_2d(W)
    bad = []
    if np.any(np.abs(W.sum(axis=1) - constraints.sum_weights) > tol):
        bad.append("sum_weights")
    inc = W > tol
    if np.any(W < -tol):
        bad.append("negative weight")
    if np.any(inc & (W < constraints.min_weight - tol)):
        bad.append("min_weight")
    if np.any(W > constraints.max_weight + tol):
        bad.append("max_weight")
    if np.any(inc & ~eligible[None, :]):
        bad.append("ineligible member included")
    if constraints.max_correlation is not None and corr is not None:
        for row in inc:
            ix = np.flatnonzero(row)
            sub = corr[np.ix_(ix, ix)] - np.eye(len(ix)) * 2
            if len(ix) > 1 and np.any(sub > constraints.max_correlation + tol):
                bad.append("max_correlation")
                break
    if constraints.max_members is not None and np.any(inc.sum(axis=1) > constraints.max_members):
        bad.append("max_members")
    return bad


# ---------------------------------------------------------------------- objective
@dataclass
class Evaluator:
    """Replays candidate weight matrices on the training dates and scores them.

    ``mask`` (bars,) selects the bars whose returns count (a regime's bars, a bootstrap
    sample given as indices)."""

    captured: CapturedSignals
    close: pd.DataFrame
    config: BacktestConfig
    objective: str = "sharpe_ratio"
    direction: str = "maximize"
    index: np.ndarray | None = None  #: bar indices (with repeats) the objective sees
    n_evals: int = 0
    seconds: float = 0.0

    def returns(self, W: np.ndarray) -> np.ndarray:
        """(bars x E) replayed ensemble returns."""
        t0 = time.perf_counter()
        sids = self.captured.strategy_ids
        frame = pd.DataFrame(np.atleast_2d(W), columns=sids)
        out = replay(self.captured, self.close, self.config, weights=frame, kind="close").to_numpy()
        self.n_evals += frame.shape[0]
        self.seconds += time.perf_counter() - t0
        return out

    def score(self, W: np.ndarray) -> np.ndarray:
        """Objective per row of W; NaN (no trades, flat) scores as the worst value."""
        R = self.returns(W)
        if self.index is not None:
            R = R[self.index]
        v = metrics_arrays(R, self.config.periods_per_year, which=[self.objective])[self.objective]
        worst = -np.inf if self.direction == "maximize" else np.inf
        return np.where(np.isfinite(v), v, worst)

    def loss(self, W: np.ndarray) -> np.ndarray:
        s = self.score(W)
        return -s if self.direction == "maximize" else s


@dataclass
class EnsembleFit:
    weights: np.ndarray  #: (K,)
    score: float  #: training objective
    method: str
    n_evals: int
    replay_seconds: float
    history: list[float] = field(default_factory=list)  #: best objective after each batch/generation


def _moments(R: np.ndarray, idx: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    X = R if idx is None else R[idx]
    mu = X.mean(axis=0)
    cov = np.cov(X, rowvar=False) if X.shape[1] > 1 else np.atleast_2d(X.var(ddof=1))
    return mu, np.atleast_2d(cov) + np.eye(X.shape[1]) * 1e-12


def _slsqp(fun: Callable[[np.ndarray], float], n: int, constraints: Constraints, starts: Sequence[np.ndarray]) -> np.ndarray:
    from scipy.optimize import minimize

    lo = constraints.min_weight
    hi = min(constraints.max_weight, constraints.sum_weights)
    cons = [{"type": "eq", "fun": lambda w: np.sum(w) - constraints.sum_weights}]
    best, best_f = None, np.inf
    for x0 in starts:
        res = minimize(fun, x0, method="SLSQP", bounds=[(lo, hi)] * n, constraints=cons,
                       options={"maxiter": 300, "ftol": 1e-12})
        if res.fun < best_f:
            best, best_f = res.x, res.fun
    return best


def _closed_form(method: str, R: np.ndarray, eligible: np.ndarray, constraints: Constraints, seed: int,
                 idx: np.ndarray | None) -> np.ndarray:
    """Weights of a closed-form / convex method on the eligible members' training returns."""
    ix = np.flatnonzero(eligible)
    mu, cov = _moments(R[:, ix], idx)
    m = constraints.max_included(len(ix))
    if m < len(ix):  # min_weight limits the count: keep the best by training Sharpe
        sharpe = mu / np.sqrt(np.diag(cov))
        ix = ix[np.argsort(-sharpe, kind="stable")[:m]]
        mu, cov = _moments(R[:, ix], idx)
    n = len(ix)
    if method == "equal_weight":
        raw = np.ones(n)
    elif method == "inverse_volatility":
        raw = 1.0 / np.sqrt(np.diag(cov))
    else:
        rng = np.random.default_rng(seed)
        starts = [np.full(n, constraints.sum_weights / n)] + [rng.dirichlet(np.ones(n)) * constraints.sum_weights
                                                               for _ in range(4 if method == "maximum_sharpe" else 0)]
        if method == "minimum_variance":
            raw = _slsqp(lambda w: float(w @ cov @ w) * 1e4, n, constraints, starts)
        else:
            raw = _slsqp(lambda w: -float(w @ mu) / math.sqrt(max(float(w @ cov @ w), 1e-18)), n, constraints, starts)
    full = np.zeros(R.shape[1])
    # scale to the bounded simplex exactly (closed forms ignore the bounds; SLSQP is close)
    scaled = raw / raw.sum() * constraints.sum_weights if raw.sum() > 0 else np.full(n, constraints.sum_weights / n)
    full[ix] = _bounded_simplex(scaled[None, :], constraints.sum_weights, constraints.min_weight,
                                constraints.max_weight)[0]
    return full


def _optuna(ev: Evaluator, eligible: np.ndarray, constraints: Constraints, method: str, n_trials: int,
            batch_size: int, seed: int) -> tuple[np.ndarray, list[float]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if method == "cmaes":
        sampler = optuna.samplers.CmaEsSampler(seed=seed)
    elif method == "nsga2":
        sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, batch_size))
    else:
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=min(20, n_trials))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    ix = np.flatnonzero(eligible)
    K = len(eligible)
    dists = {f"w{k}": optuna.distributions.FloatDistribution(0.0, 1.0) for k in ix}
    # the equal-weight start as the first trial (every method starts no worse than the baseline)
    study.enqueue_trial({f"w{k}": 0.5 for k in ix})
    history: list[float] = []
    best_w, best_s = None, -np.inf
    done = 0
    while done < n_trials:
        n = min(batch_size, n_trials - done)
        trials = [study.ask(dists) for _ in range(n)]
        scores = np.zeros((n, K))
        for i, t in enumerate(trials):
            for k in ix:
                scores[i, k] = t.params[f"w{k}"]
        W = project(scores, eligible, constraints)
        s = ev.score(W)
        s = s if ev.direction == "maximize" else -s
        for t, v in zip(trials, s):
            study.tell(t, float(v) if np.isfinite(v) else -1e9)
        j = int(np.argmax(s))
        if s[j] > best_s:
            best_s, best_w = float(s[j]), W[j]
        history.append(best_s if ev.direction == "maximize" else -best_s)
        done += n
    return best_w, history


def _differential_evolution(ev: Evaluator, eligible: np.ndarray, constraints: Constraints, n_generations: int,
                            population_size: int, seed: int) -> tuple[np.ndarray, list[float]]:
    from scipy.optimize import differential_evolution

    ix = np.flatnonzero(eligible)
    K = len(eligible)
    history: list[float] = []
    best = {"w": None, "loss": np.inf}

    def objective(X: np.ndarray) -> np.ndarray:  # X: (n_dims, population)
        scores = np.zeros((X.shape[1], K))
        scores[:, ix] = X.T
        W = project(scores, eligible, constraints)
        loss = ev.loss(W)
        j = int(np.argmin(loss))
        if loss[j] < best["loss"]:
            best["loss"], best["w"] = float(loss[j]), W[j]
        return loss

    def callback(*_args, **_kw):
        history.append(-best["loss"] if ev.direction == "maximize" else best["loss"])

    popsize = max(2, int(math.ceil(population_size / max(len(ix), 1))))
    x0 = np.full(len(ix), 0.5)
    differential_evolution(objective, [(0.0, 1.0)] * len(ix), maxiter=n_generations, popsize=popsize, seed=seed,
                           vectorized=True, updating="deferred", polish=False, tol=0.0, x0=x0, callback=callback)
    return best["w"], history


def fit_weights(method: str, ev: Evaluator, member_returns: np.ndarray, eligible: np.ndarray,
                constraints: Constraints, *, n_trials: int = 300, batch_size: int = 32, n_generations: int = 50,
                population_size: int = 50, seed: int = 42) -> EnsembleFit:
    """Fit one weight vector (K,) with ``method``; ``ev`` scores candidates by replay on the
    training dates (its ``index`` restricts/resamples the bars the objective sees);
    ``member_returns`` (bars x K, the members replayed alone on those dates) feed the closed
    forms."""
    canon = canonical_method(method)
    if canon is None:
        raise ValueError(f"unknown ensemble method {method!r}; known: {', '.join(METHODS)}")
    why = constraints.feasible(int(eligible.sum()))
    if why:
        raise ValueError(f"the weight constraints cannot be met: {why}")
    n0, s0 = ev.n_evals, ev.seconds
    history: list[float] = []
    if canon in ("equal_weight", "inverse_volatility", "minimum_variance", "maximum_sharpe"):
        w = _closed_form(canon, member_returns, eligible, constraints, seed, ev.index)
    elif canon == "differential_evolution":
        w, history = _differential_evolution(ev, eligible, constraints, n_generations, population_size, seed)
    else:
        w, history = _optuna(ev, eligible, constraints, canon, n_trials, batch_size, seed)
    score = float(ev.score(w[None, :])[0])
    return EnsembleFit(w, score, canon, ev.n_evals - n0, ev.seconds - s0, history)


# ---------------------------------------------------------------------- time-varying weights
def weight_path(targets: np.ndarray, member_returns: np.ndarray, *, regime: np.ndarray | None = None,
                confidence: np.ndarray | None = None, threshold: float = 0.0, rebalance_every: int = 1) -> np.ndarray:
    """(bars x K) weights applied to the positions decided at each bar.

    ``targets``: (K,) one vector, or (n_regimes + 1, K) -- row j for regime j, the LAST row
    the unconditional fallback used while the regime is unknown (-1) or its probability is
    below ``threshold``.  ``regime``/``confidence``: causal per-bar label and its probability.
    Targets are set at every ``rebalance_every``-th bar (and when the target row changes at a
    rebalance); in between, the weights drift with the members' returns (buy and hold of the
    sleeves): w_k(t) ~ w_k(t0) * prod(1 + r_k) since the last rebalance t0.
    """
    R = np.asarray(member_returns, dtype=np.float64)
    T, K = R.shape
    Tg = np.atleast_2d(targets)
    if Tg.shape[0] == 1:
        row = np.zeros(T, dtype=int)
    else:
        fallback = Tg.shape[0] - 1
        reg = np.asarray(regime, dtype=int)
        ok = reg >= 0
        if confidence is not None:
            ok &= np.nan_to_num(np.asarray(confidence, dtype=np.float64), nan=0.0) >= threshold
        row = np.where(ok, reg, fallback)
    step = max(1, int(rebalance_every))
    rebal = (np.arange(T) % step) == 0
    if step == 1:
        return Tg[row]
    # the target row in force is the one at the last rebalance bar
    last = np.maximum.accumulate(np.where(rebal, np.arange(T), 0))
    row = row[last]
    # growth of each sleeve since the last rebalance (the return of bar t accrues to the weight
    # held from t-1, so the drift at bar t includes r[t])
    cs = np.cumsum(np.log1p(np.clip(np.nan_to_num(R), -0.999999, None)), axis=0)
    g = np.exp(cs - cs[last])  # prod of (1 + r_k) over the bars after the rebalance bar
    W = Tg[row] * g
    total = W.sum(axis=1, keepdims=True)
    target_sum = Tg[row].sum(axis=1, keepdims=True)
    return np.where(total > 0, W / np.where(total > 0, total, 1.0) * target_sum, Tg[row])


def path_returns(captured: CapturedSignals, close: pd.DataFrame, config: BacktestConfig, path: np.ndarray) -> np.ndarray:
    """Ensemble returns (bars,) for time-varying weights (bars x K): the captured positions are
    netted per symbol with the weights of each bar, then backtested (one-bar lag, costs,
    sizing): a replay with weights that change over time."""
    pos = captured.positions_scb()  # (S, K, T)
    S, K, T = pos.shape
    net = np.einsum("skt,tk->st", pos.astype(np.float64), path)  # (S, T)
    rets = close[list(captured.symbols)].pct_change(fill_method=None).fillna(0.0).to_numpy()
    out = backtest_positions(net.T[:, :, None], rets, config)
    return out[:, 0]


def bootstrap_weights(fit: Callable[[np.ndarray | None], np.ndarray], n_bars: int, n_bootstrap: int,
                      block_size: int, seed: int) -> np.ndarray:
    """(n_bootstrap x K) weights re-fit on stationary block-bootstrap resamples of the
    training bars (``fit(index)`` fits with the objective on those bar indices)."""
    from .analysis import bootstrap_indices

    rng = np.random.default_rng(seed)
    idx = bootstrap_indices(n_bars, n_bootstrap, n_bars, rng, block_size=block_size)
    return np.vstack([fit(idx[b]) for b in range(n_bootstrap)])
