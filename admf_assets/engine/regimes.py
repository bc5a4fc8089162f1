"""Market-regime detection: Markov switching (statsmodels), k-means on causal features, change
points (ruptures) -- every label causal, so a phase may trade on it.

Each detector is FIT on a training window (the first ``fit_end`` bars) and then LABELS every
bar using data up to that bar only:

* ``markov`` (alias ``hmm``): ``statsmodels`` ``MarkovRegression`` of the daily returns (x100)
  with a switching mean and variance, fit by maximum likelihood on the training window; the
  Hamilton filter is then run with those parameters over the whole series.  The label of bar
  t is the argmax of the FILTERED probability P(S_t | r_1..r_t).  The Kim-smoothed
  probabilities P(S_t | r_1..r_T) are returned too (``smoothed_*``) for analysis only: they
  look ahead and must never drive a position.
* ``kmeans``: k-means (scipy ``kmeans2``, k-means++ starts, seeded, best of ``n_init``) on
  causal per-date features (rolling volatility, trend, volume z-score, correlation; each a
  rolling window ending at t), standardised with the training window's mean and std; the
  centroids are fit on the training rows, every bar gets its nearest centroid.
* ``change_point``: ruptures' ``KernelCPD`` (linear kernel, penalised, C implementation) on
  ``log(r^2)`` of the returns, re-run on an EXPANDING window every ``refit_every`` bars; the
  bar's label is the regime of the segment that contains it as seen at the latest refit,
  with the segment's volatility measured on the bars up to t.  Regime levels (volatility of
  each regime) come from clustering the training window's segments.

Regimes are ordered from the calmest to the most volatile (labels ``calm``/``volatile`` for
two, ``low``/``mid``/``high`` for three, ``q1..qn`` beyond), so ``regime_id`` means the same
across methods and fits.  ``n_regimes`` may be a list: every candidate is fit and the one
with the lowest BIC is chosen (``detect`` returns all of them in ``candidates``).

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> r = pd.Series(np.r_[rng.normal(0, .005, 300), rng.normal(0, .02, 100), rng.normal(0, .005, 300)],
...               index=pd.bdate_range("2020-01-01", periods=700))
>>> fit = detect(r, "markov", 2, fit_end=700)
>>> fit.labels[350], fit.labels[100], fit.names
(1, 0, ['calm', 'volatile'])
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from .analysis import regime_labels
from .metrics import TRADING_DAYS

__all__ = [
    "METHODS",
    "METHOD_ALIASES",
    "RegimeFit",
    "RegimeDetection",
    "canonical_method",
    "detect",
    "detect_many",
    "regime_features",
    "transition_matrix",
    "expected_durations",
    "label_accuracy",
    "gaussian_bic",
]

METHODS = ("markov", "kmeans", "change_point")
METHOD_ALIASES = {"hmm": "markov", "markov_switching": "markov", "markov_regression": "markov",
                  "k_means": "kmeans", "kmean": "kmeans", "clustering": "kmeans",
                  "changepoint": "change_point", "change_points": "change_point", "cpd": "change_point",
                  "ruptures": "change_point"}
#: feature families kmeans may use (from engine.features, averaged over symbols per date)
FEATURE_FAMILIES = ("volatility", "trend", "volume", "correlation", "momentum")


def canonical_method(name: str) -> str | None:
    key = str(name).strip().lower()
    if key in METHODS:
        return key
    return METHOD_ALIASES.get(key)


@dataclass
class RegimeFit:
    """One detector fit with one number of regimes.

    ``labels`` (int, -1 while warming up) and ``probability`` (of the label) are causal;
    ``probabilities`` is (bars x regimes) of causal (filtered) probabilities;
    ``smoothed`` the look-ahead (Kim) probabilities for the Markov method, else None.
    ``transition[i, j]`` = P(regime j tomorrow | regime i today); ``durations`` the expected
    spell length in bars; ``levels`` per-regime annualized volatility and mean return.
    """

    method: str
    n_regimes: int
    index: pd.DatetimeIndex
    labels: np.ndarray
    probability: np.ndarray
    probabilities: np.ndarray
    transition: np.ndarray
    durations: np.ndarray
    bic: float
    levels: pd.DataFrame
    smoothed: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return regime_labels(self.n_regimes)

    def label_names(self, labels: np.ndarray | None = None) -> np.ndarray:
        lab = self.labels if labels is None else labels
        names = np.asarray(self.names + ["unknown"], dtype=object)
        return names[np.where(lab < 0, self.n_regimes, lab)]

    @property
    def smoothed_labels(self) -> np.ndarray | None:
        return None if self.smoothed is None else np.argmax(self.smoothed, axis=1)


@dataclass
class RegimeDetection:
    """The chosen fit and every candidate (one per ``n_regimes``), with the criterion."""

    best: RegimeFit
    candidates: list[RegimeFit]

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{"method": f.method, "n_regimes": f.n_regimes, "bic": f.bic,
                              "chosen": f is self.best, **{k: v for k, v in f.info.items()
                                                           if isinstance(v, (int, float, str, bool))}}
                             for f in self.candidates])


# ---------------------------------------------------------------------- shared pieces
def transition_matrix(labels: np.ndarray, k: int) -> np.ndarray:
    """Empirical P(next = j | now = i) from consecutive valid labels (rows without
    observations are uniform)."""
    lab = np.asarray(labels)
    a, b = lab[:-1], lab[1:]
    ok = (a >= 0) & (b >= 0)
    counts = np.zeros((k, k))
    np.add.at(counts, (a[ok], b[ok]), 1.0)
    rows = counts.sum(axis=1, keepdims=True)
    return np.where(rows > 0, counts / np.where(rows > 0, rows, 1.0), 1.0 / k)


def expected_durations(transition: np.ndarray) -> np.ndarray:
    """Expected spell length 1 / (1 - p_ii) in bars (inf for an absorbing regime)."""
    stay = np.clip(np.diag(transition), 0.0, 1.0)
    with np.errstate(divide="ignore"):
        return np.where(stay < 1.0, 1.0 / (1.0 - stay), np.inf)


def gaussian_bic(returns: np.ndarray, labels: np.ndarray, k: int) -> float:
    """BIC of "returns are Gaussian with a mean and variance per regime, regimes a Markov
    chain" given hard labels (the same model family the Markov method fits): lower is better."""
    r = np.asarray(returns, dtype=np.float64)
    lab = np.asarray(labels)
    ok = (lab >= 0) & np.isfinite(r)
    r, lab = r[ok], lab[ok]
    n = len(r)
    ll = 0.0
    for j in range(k):
        x = r[lab == j]
        if len(x) < 2:
            return float("inf")
        var = max(float(x.var()), 1e-12)
        ll += -0.5 * len(x) * (np.log(2 * np.pi * var) + 1.0)
    P = transition_matrix(lab, k)
    a, b = lab[:-1], lab[1:]
    with np.errstate(divide="ignore"):
        ll += float(np.sum(np.log(np.maximum(P[a, b], 1e-300))))
    n_params = 2 * k + k * (k - 1)
    return float(-2.0 * ll + n_params * np.log(max(n, 2)))


def _levels(returns: np.ndarray, labels: np.ndarray, k: int, ppy: int) -> pd.DataFrame:
    rows = []
    for j in range(k):
        x = returns[(labels == j) & np.isfinite(returns)]
        rows.append({"regime_id": j, "volatility": float(x.std(ddof=1)) * np.sqrt(ppy) if len(x) > 1 else np.nan,
                     "mean_return": float(x.mean()) * ppy if len(x) else np.nan, "n_bars": int(len(x))})
    return pd.DataFrame(rows)


def _order_by(values: np.ndarray) -> np.ndarray:
    """rank[j] = position of regime j when sorted by ``values`` ascending."""
    order = np.argsort(values, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank


def _relabel(labels: np.ndarray, rank: np.ndarray) -> np.ndarray:
    return np.where(labels >= 0, rank[np.maximum(labels, 0)], -1)


# ---------------------------------------------------------------------- markov
def _markov(r: pd.Series, k: int, fit_end: int, seed: int, search_reps: int, ppy: int) -> RegimeFit:
    from statsmodels.tools.sm_exceptions import ConvergenceWarning
    from statsmodels.tsa.regime_switching.markov_regression import MarkovRegression

    y = r.to_numpy(dtype=np.float64) * 100.0  # percent: the likelihood is better conditioned
    if fit_end < 10 * k:
        raise ValueError(f"markov: {fit_end} training bars is too few for {k} regimes")
    train = MarkovRegression(y[:fit_end], k_regimes=k, trend="c", switching_variance=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        res = train.fit(search_reps=search_reps, rng=np.random.default_rng(seed), disp=False)
        full = MarkovRegression(y, k_regimes=k, trend="c", switching_variance=True)
        filt = full.filter(res.params)  # fixed training parameters: causal filter over all bars
        smooth = full.smooth(res.params)
    filtered = np.asarray(filt.filtered_marginal_probabilities)
    smoothed = np.asarray(smooth.smoothed_marginal_probabilities)
    names = train.param_names
    sig = np.array([res.params[names.index(f"sigma2[{j}]")] for j in range(k)])
    rank = _order_by(sig)
    inv = np.argsort(rank)  # new position -> old regime
    filtered, smoothed = filtered[:, inv], smoothed[:, inv]
    P_to_from = np.asarray(res.regime_transition)[..., 0]  # [to, from]
    P = P_to_from.T[np.ix_(inv, inv)]
    labels = np.argmax(filtered, axis=1)
    prob = filtered[np.arange(len(labels)), labels]
    levels = _levels(r.to_numpy(), labels, k, ppy)
    levels["model_volatility"] = np.sqrt(sig[inv]) / 100.0 * np.sqrt(ppy)
    return RegimeFit("markov", k, r.index, labels, prob, filtered, P, expected_durations(P), float(res.bic),
                     levels, smoothed=smoothed,
                     info={"loglik": float(res.llf), "aic": float(res.aic), "fit_bars": int(fit_end),
                           "converged": bool(res.mle_retvals.get("converged", True)) if res.mle_retvals else True})


# ---------------------------------------------------------------------- kmeans
def regime_features(close: pd.DataFrame, volume: pd.DataFrame | None, features: Sequence[str], window: int = 20,
                    ppy: int = TRADING_DAYS) -> pd.DataFrame:
    """Causal per-date features (dates x feature) averaged over the symbols: rolling
    volatility, trend (close / SMA - 1), volume z-score, correlation to the universe mean,
    momentum -- each a window of ``window`` bars ending at the date."""
    from .features import compute_features, feature_columns

    fams = [f for f in features if f != "volume" or volume is not None]
    table = compute_features(close, volume, fams, [window], periods_per_year=ppy)
    cols = feature_columns(fams, [window])
    out = table.groupby("date", sort=True)[cols].mean()
    out.index = pd.DatetimeIndex(out.index, name="date")
    return out.reindex(close.index)


def _kmeans_fit(X: np.ndarray, k: int, seed: int, n_init: int) -> tuple[np.ndarray, float]:
    from scipy.cluster.vq import kmeans2

    best, best_sse = None, np.inf
    rng = np.random.default_rng(seed)
    for _ in range(n_init):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cent, lab = kmeans2(X, k, minit="++", seed=rng)
        if len(np.unique(lab)) < k:
            continue
        sse = float(((X - cent[lab]) ** 2).sum())
        if sse < best_sse:
            best, best_sse = cent, sse
    if best is None:
        raise ValueError(f"kmeans: could not form {k} non-empty clusters")
    return best, best_sse


def _kmeans(r: pd.Series, feats: pd.DataFrame, k: int, fit_end: int, seed: int, n_init: int, ppy: int) -> RegimeFit:
    F = feats.reindex(r.index).to_numpy(dtype=np.float64)
    ok = np.all(np.isfinite(F), axis=1)
    train = ok.copy()
    train[fit_end:] = False
    if train.sum() < 10 * k:
        raise ValueError(f"kmeans: {int(train.sum())} training rows with complete features is too few for {k} regimes")
    mu, sd = F[train].mean(axis=0), F[train].std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    Z = (F - mu) / sd
    cent, sse = _kmeans_fit(Z[train], k, seed, n_init)
    d2 = ((np.where(ok[:, None], Z, 0.0)[:, None, :] - cent[None, :, :]) ** 2).sum(axis=2)  # (T, k)
    labels = np.where(ok, np.argmin(d2, axis=1), -1)
    # soft assignment: Gaussian kernel with the training within-cluster variance per dimension
    s2 = max(sse / max(int(train.sum()) * Z.shape[1], 1), 1e-12)
    logits = -0.5 * d2 / s2
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    probs[~ok] = np.nan
    vol_cols = [i for i, c in enumerate(feats.columns) if str(c).startswith("volatility")]
    key = cent[:, vol_cols[0]] if vol_cols else np.array([r.to_numpy()[(labels == j) & train].std()
                                                            for j in range(k)])
    rank = _order_by(key)
    inv = np.argsort(rank)
    labels = _relabel(labels, rank)
    probs = probs[:, inv]
    prob = np.where(labels >= 0, probs[np.arange(len(labels)), np.maximum(labels, 0)], np.nan)
    rv = r.to_numpy(dtype=np.float64)
    P = transition_matrix(labels[:fit_end], k)
    return RegimeFit("kmeans", k, r.index, labels, prob, probs, P, expected_durations(P),
                     gaussian_bic(rv[:fit_end], labels[:fit_end], k), _levels(rv, labels, k, ppy),
                     info={"features": ", ".join(map(str, feats.columns)), "fit_bars": int(train.sum()),
                           "inertia": sse})


# ---------------------------------------------------------------------- change points
def _segments(x: np.ndarray, pen: float, min_size: int) -> list[int]:
    import ruptures as rpt

    algo = rpt.KernelCPD(kernel="linear", min_size=min_size).fit(x.reshape(-1, 1))
    return algo.predict(pen=pen)  # segment ends, the last one == len(x)


def _change_point(r: pd.Series, k: int, fit_end: int, penalty: float | None, min_size: int, refit_every: int,
                  ppy: int) -> RegimeFit:
    rv = r.to_numpy(dtype=np.float64)
    x = np.log(np.maximum(rv, -np.inf) ** 2 + 1e-10)
    x = np.where(np.isfinite(x), x, np.nanmedian(x))
    pen = penalty if penalty is not None else np.log(max(fit_end, 2)) * float(np.var(x[:fit_end]))
    # regime levels: cluster the training segments' log-volatility into k levels; a default
    # penalty that leaves fewer segments than regimes is halved (at most 4 times)
    ends = _segments(x[:fit_end], pen, min_size)
    for _ in range(4 if penalty is None else 0):
        if len(ends) >= k:
            break
        pen /= 2.0
        ends = _segments(x[:fit_end], pen, min_size)
    starts = [0, *ends[:-1]]
    seg_lv = np.array([np.log(rv[s:e].std() + 1e-12) for s, e in zip(starts, ends)])
    seg_n = np.array([e - s for s, e in zip(starts, ends)], dtype=float)
    if len(seg_lv) < k:
        raise ValueError(f"change_point: the training window has {len(seg_lv)} segments, fewer than {k} regimes "
                         "(lower the penalty or n_regimes)")
    centers = _weighted_levels(seg_lv, seg_n, k)
    T = len(rv)
    labels = np.full(T, -1)
    seg_start = np.zeros(T, dtype=int)
    # expanding refits: at refit time tau the last detected change c (<= tau) starts the current
    # segment for bars tau..next refit - 1; bars of the training window use the training fit
    for s, e in zip(starts, ends):
        seg_start[s:e] = s
    taus = list(range(fit_end, T, refit_every))
    for i, tau in enumerate(taus):
        stop = taus[i + 1] if i + 1 < len(taus) else T
        seg = _segments(x[: tau + 1], pen, min_size)
        last = ([0, *seg[:-1]])[-1]
        seg_start[tau:stop] = last
    # label of bar t: nearest level to the log-volatility of bars seg_start[t]..t (causal);
    # within the training window the segment is known only up to t as well
    csum = np.concatenate([[0.0], np.cumsum(rv)])
    csq = np.concatenate([[0.0], np.cumsum(rv * rv)])
    t = np.arange(T)
    n = t - seg_start + 1
    mean = (csum[t + 1] - csum[seg_start]) / n
    var = np.maximum((csq[t + 1] - csq[seg_start]) / n - mean ** 2, 0.0)
    lv = np.log(np.sqrt(var) + 1e-12)
    enough = n >= min(min_size, 5)
    dist = np.abs(lv[:, None] - centers[None, :])
    labels = np.where(enough, np.argmin(dist, axis=1), -1)
    logits = -0.5 * (dist / max(float(np.std(seg_lv)) / k, 1e-3)) ** 2
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    probs[~enough] = np.nan
    prob = np.where(labels >= 0, probs[t, np.maximum(labels, 0)], np.nan)
    P = transition_matrix(labels[:fit_end], k)
    return RegimeFit("change_point", k, r.index, labels, prob, probs, P, expected_durations(P),
                     gaussian_bic(rv[:fit_end], labels[:fit_end], k), _levels(rv, labels, k, ppy),
                     info={"train_segments": len(seg_lv), "penalty": float(pen), "refit_every": int(refit_every),
                           "fit_bars": int(fit_end)})


def _weighted_levels(values: np.ndarray, weights: np.ndarray, k: int, iters: int = 100) -> np.ndarray:
    """1-d weighted k-means (deterministic: quantile starts), sorted ascending."""
    order = np.argsort(values)
    cw = np.cumsum(weights[order]) / weights.sum()
    centers = np.array([values[order][np.searchsorted(cw, (j + 0.5) / k)] for j in range(k)], dtype=float)
    for _ in range(iters):
        lab = np.argmin(np.abs(values[:, None] - centers[None, :]), axis=1)
        new = np.array([np.average(values[lab == j], weights=weights[lab == j]) if np.any(lab == j) else centers[j]
                        for j in range(k)])
        if np.allclose(new, centers):
            break
        centers = new
    return np.sort(centers)


# ---------------------------------------------------------------------- entry points
def detect(returns: pd.Series, method: str, n_regimes: int | Sequence[int] = 2, *, fit_end: int | None = None,
           features: pd.DataFrame | None = None, seed: int = 42, search_reps: int = 5, n_init: int = 10,
           penalty: float | None = None, min_size: int = 10, refit_every: int = 5,
           periods_per_year: int = TRADING_DAYS) -> RegimeFit | RegimeDetection:
    """Fit ``method`` on the first ``fit_end`` bars of ``returns`` (a daily return Series,
    default all bars) and label every bar causally.  With one ``n_regimes`` returns the
    :class:`RegimeFit`; with a list, a :class:`RegimeDetection` whose ``best`` has the lowest
    BIC.  ``features`` (dates x columns, causal) are required for ``kmeans``."""
    canon = canonical_method(method)
    if canon is None:
        raise ValueError(f"unknown regime method {method!r}; known: {', '.join(METHODS)}")
    r = pd.Series(returns, dtype=np.float64).fillna(0.0)
    fit_end = len(r) if fit_end is None else int(fit_end)
    many = not isinstance(n_regimes, (int, np.integer))
    ks = [int(k) for k in (n_regimes if many else [n_regimes])]
    fits = []
    for k in ks:
        if k < 2:
            raise ValueError(f"n_regimes must be at least 2 (got {k})")
        if canon == "markov":
            fits.append(_markov(r, k, fit_end, seed, search_reps, periods_per_year))
        elif canon == "kmeans":
            if features is None:
                raise ValueError("kmeans needs features (see regime_features)")
            fits.append(_kmeans(r, features, k, fit_end, seed, n_init, periods_per_year))
        else:
            fits.append(_change_point(r, k, fit_end, penalty, min_size, refit_every, periods_per_year))
    if not many:
        return fits[0]
    finite = [f for f in fits if np.isfinite(f.bic)]
    best = min(finite or fits, key=lambda f: f.bic)
    return RegimeDetection(best, fits)


def detect_many(returns: pd.Series, methods: Sequence[str], n_regimes, **kwargs) -> dict[str, RegimeDetection]:
    """``detect`` for several methods (each with every candidate ``n_regimes``)."""
    ks = list(n_regimes) if not isinstance(n_regimes, (int, np.integer)) else [int(n_regimes)]
    return {canonical_method(m): detect(returns, m, ks, **kwargs) for m in methods}


def label_accuracy(labels: np.ndarray, truth: np.ndarray) -> float:
    """Share of bars whose label matches the true regime after matching labels: one-to-one
    (Hungarian) when there are as many detected as true regimes, else each detected regime
    maps to its most frequent true regime.  Bars labelled -1 count as wrong."""
    from scipy.optimize import linear_sum_assignment

    lab = np.asarray(labels)
    tru_codes, tru = np.unique(np.asarray(truth), return_inverse=True)
    k_det = int(lab.max()) + 1 if (lab >= 0).any() else 0
    k_tru = len(tru_codes)
    if k_det == 0:
        return 0.0
    C = np.zeros((k_det, k_tru))
    ok = lab >= 0
    np.add.at(C, (lab[ok], tru[ok]), 1.0)
    if k_det == k_tru:
        rows, cols = linear_sum_assignment(-C)
        correct = C[rows, cols].sum()
    else:
        correct = C.max(axis=1).sum()
    return float(correct / len(lab))
