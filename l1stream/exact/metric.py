"""The in-memory metric: :func:`mean_absolute_error`, :func:`l1_loss` and the streaming
:class:`MeanAbsoluteError` accumulator, all on the exact states of :mod:`l1stream.exact.state`."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from l1stream.errors import UsageError
from l1stream.exact.columns import as_numeric
from l1stream.exact.state import L1State, absolute_errors, check_nan_policy, chunk_state, correctly_rounded


def mean_absolute_error(y_true=None, y_pred=None, *, sample_weight=None, multioutput="uniform_average",
                        nan_policy: str = "raise", actual=None, prediction=None):
    """Exact, correctly rounded MAE of in-memory arrays, with scikit-learn's signature.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,) or (n, outputs)
        numpy, pyarrow, pandas or lists (``actual=`` and ``prediction=`` are accepted as aliases).
    sample_weight : array-like of shape (n,), optional
    multioutput : {"raw_values", "uniform_average"} or array-like of shape (outputs,)
        With 2-D inputs: every output's MAE, or their mean (plain or weighted), computed exactly
        from the exact per-output means and rounded once.
    nan_policy : {"raise", "omit", "propagate"}, default "raise"

    Examples
    --------
    >>> mean_absolute_error([10, 11, 12, 13], [10, 12, 14, 11])
    1.25
    >>> mean_absolute_error([1.0, 2.0], [2.0, 2.0], sample_weight=[3, 1])
    0.75
    >>> mean_absolute_error([[0.5, 1], [-1, 1], [7, -6]], [[0, 2], [-1, 2], [8, -5]], multioutput="raw_values")
    array([0.5, 1. ])
    >>> mean_absolute_error([[0.5, 1], [-1, 1], [7, -6]], [[0, 2], [-1, 2], [8, -5]], multioutput=[0.3, 0.7])
    0.85
    """
    y_true, y_pred = _alias(y_true, actual, "y_true", "actual"), _alias(y_pred, prediction, "y_pred", "prediction")
    true_2d, pred_2d = _is_2d(y_true), _is_2d(y_pred)
    if true_2d != pred_2d:
        raise UsageError(f"y_true and y_pred are expected to have the same number of dimensions, but y_true is "
                         f"{'2' if true_2d else '1'}-D and y_pred {'2' if pred_2d else '1'}-D")
    if not true_2d:
        states = [chunk_state(y_true, y_pred, sample_weight, nan_policy=nan_policy)]
    else:
        t, p = np.asarray(y_true), np.asarray(y_pred)
        if t.shape != p.shape:
            raise UsageError(f"y_true and y_pred are expected to have the same shape, but got {t.shape} and {p.shape}")
        states = [chunk_state(t[:, j], p[:, j], sample_weight, nan_policy=nan_policy, names=(
            f"y_true[:, {j}]", f"y_pred[:, {j}]", "sample_weight")) for j in range(t.shape[1])]
    return combine_outputs(states, multioutput)


def combine_outputs(states: list, multioutput="uniform_average"):
    """The figure ``mean_absolute_error`` returns for the per-output exact ``states``."""
    if isinstance(multioutput, str) and multioutput == "raw_values":
        return np.array([s.mae for s in states])
    if isinstance(multioutput, str) and multioutput != "uniform_average":
        raise UsageError(f"multioutput must be 'raw_values', 'uniform_average' or an array of {len(states)} "
                         f"weights; got {multioutput!r}")
    if len(states) == 1 and isinstance(multioutput, str):
        return states[0].mae
    return _average(states, None if isinstance(multioutput, str) else multioutput)


def _alias(value, alias, name: str, alias_name: str):
    if alias is None:
        if value is None:
            raise UsageError(f"{name} is required (or {alias_name}=)")
        return value
    if value is not None:
        raise UsageError(f"give {name} or {alias_name}, not both")
    return alias


def _is_2d(values) -> bool:
    ndim = getattr(values, "ndim", None)
    if ndim is None and isinstance(values, (list, tuple)):
        ndim = 2 if values and isinstance(values[0], (list, tuple, np.ndarray)) else 1
    if ndim not in (None, 1, 2):
        raise UsageError(f"inputs are expected to be 1-D or 2-D, but got {ndim} dimensions")
    return ndim == 2


def _average(states: list, weights) -> float:
    """The exact (weighted) mean of the outputs' exact MAEs, rounded once."""
    maes = [s.mae for s in states]  # raises NoRowsError for an output without rows
    if any(m != m for m in maes):
        return math.nan
    if any(s.propagated is not None for s in states):  # an infinite output
        return float(np.mean(maes))
    if weights is None:
        weights = [1] * len(states)
    weights = [Fraction(w) for w in np.asarray(weights, dtype=float).tolist()]
    if len(weights) != len(states) or any(w < 0 for w in weights) or not sum(weights):
        raise UsageError(f"multioutput weights are expected to be {len(states)} non-negative numbers, not all zero; "
                         f"got {weights!r}")
    total = sum(w * s.abs_error_sum / s.weight_sum for w, s in zip(weights, states))
    return correctly_rounded(total / sum(weights))


def l1_loss(actual, prediction) -> np.ndarray:
    """Per-row L1 loss ``|actual - prediction|``, each correctly rounded to float64.

    Null, NaN and infinite inputs give NaN (or inf, as IEEE arithmetic says).

    Examples
    --------
    >>> l1_loss([10, 11, 12, 13], [10, 12, 14, 11]).tolist()
    [0.0, 1.0, 2.0, 2.0]
    >>> l1_loss([1.7976931348623157e308], [-1.7976931348623157e308]).tolist()
    [inf]
    """
    a, p = as_numeric(actual, "actual"), as_numeric(prediction, "prediction")
    if len(a) != len(p):
        raise UsageError(f"actual and prediction are expected to have the same length, but got {len(a)} and {len(p)}")
    loss = absolute_errors(a, p)
    for col in (a, p):
        if col.null is not None:
            loss[col.null] = np.nan
    return loss


class MeanAbsoluteError:
    """A streaming, mergeable, exact MAE accumulator (torchmetrics style).

    Call :meth:`update` on chunks in any loop, :meth:`merge` accumulators built
    elsewhere (threads, processes, machines: they pickle), and read :attr:`mae`.

    Examples
    --------
    >>> m = MeanAbsoluteError()
    >>> m.update([10, 11], [10, 12]).update([12, 13], [14, 11])
    MeanAbsoluteError(mae=1.25, count=4)
    >>> left, right = MeanAbsoluteError(), MeanAbsoluteError()
    >>> left.update([0.1], [0.3]).merge(right.update([0.2], [0.7])).mae
    0.35
    >>> m = MeanAbsoluteError()
    >>> m([1.0, 2.0], [1.5, 2.5]), m([4.0], [1.0]), m.compute()  # batch values, then the whole
    (0.5, 3.0, 1.3333333333333333)
    """

    def __init__(self, *, nan_policy: str = "raise") -> None:
        check_nan_policy(nan_policy)
        self.nan_policy = nan_policy
        self.state = L1State.empty()

    def update(self, actual, prediction, weight=None) -> "MeanAbsoluteError":
        """Add a chunk of rows (numpy, pyarrow, pandas or lists); returns ``self``."""
        self.state = self.state.merge(chunk_state(actual, prediction, weight, nan_policy=self.nan_policy))
        return self

    def forward(self, actual, prediction, weight=None) -> float:
        """The MAE of this batch alone, and accumulate it (torchmetrics' ``forward``)."""
        batch = chunk_state(actual, prediction, weight, nan_policy=self.nan_policy)
        self.state = self.state.merge(batch)
        return batch.mae

    __call__ = forward

    def compute(self) -> float:
        """The MAE of every row so far (torchmetrics' name for :attr:`mae`)."""
        return self.state.mae

    def merge_state(self, other) -> None:
        """Add another accumulator's (or an :class:`L1State`'s) rows to this one, in place."""
        self.state = self.state.merge(other.state if isinstance(other, MeanAbsoluteError) else other)

    def merge(self, other: "MeanAbsoluteError") -> "MeanAbsoluteError":
        """A new accumulator holding the rows of both (exact, order-independent)."""
        merged = MeanAbsoluteError(nan_policy=self.nan_policy)
        merged.state = self.state.merge(other.state)
        return merged

    def reset(self) -> None:
        """Forget every row."""
        self.state = L1State.empty()

    @property
    def mae(self) -> float:
        """The correctly rounded MAE so far (raises :class:`~l1stream.NoRowsError` before any row)."""
        return self.state.mae

    @property
    def count(self) -> int:
        return self.state.count

    @property
    def left_out(self) -> dict:
        return dict(self.state.left_out)

    def __repr__(self) -> str:
        mae = self.state.mae if self.state.count or self.state.propagated is not None else None
        return f"MeanAbsoluteError(mae={mae!r}, count={self.state.count})"
