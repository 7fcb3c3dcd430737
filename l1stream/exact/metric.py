"""The in-memory metric: :func:`mean_absolute_error`, :func:`l1_loss` and the streaming
:class:`MeanAbsoluteError` accumulator, all on the exact states of :mod:`l1stream.exact.state`."""

from __future__ import annotations

import numpy as np

from l1stream.errors import UsageError
from l1stream.exact.columns import as_numeric
from l1stream.exact.state import L1State, absolute_errors, check_nan_policy, chunk_state


def mean_absolute_error(actual, prediction, *, sample_weight=None, nan_policy: str = "raise") -> float:
    """Exact, correctly rounded MAE of in-memory arrays (sklearn-compatible signature).

    Examples
    --------
    >>> mean_absolute_error([10, 11, 12, 13], [10, 12, 14, 11])
    1.25
    >>> mean_absolute_error([1.0, 2.0], [2.0, 2.0], sample_weight=[3, 1])
    0.75
    """
    return chunk_state(actual, prediction, sample_weight, nan_policy=nan_policy).mae


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
    """

    def __init__(self, *, nan_policy: str = "raise") -> None:
        check_nan_policy(nan_policy)
        self.nan_policy = nan_policy
        self.state = L1State.empty()

    def update(self, actual, prediction, weight=None) -> "MeanAbsoluteError":
        """Add a chunk of rows (numpy, pyarrow, pandas or lists); returns ``self``."""
        self.state = self.state.merge(chunk_state(actual, prediction, weight, nan_policy=self.nan_policy))
        return self

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
