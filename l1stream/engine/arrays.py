"""Arrays too large for memory: :func:`mean_absolute_error` over Dask arrays, block by block.

The same exact states as the in-memory metric (one per block and output, merged in a tree), so the
answer is bit-identical to ``l1stream.exact.metric.mean_absolute_error`` on the computed arrays,
whatever the chunking.  Anything that is not a Dask array goes to that function unchanged.
"""

from __future__ import annotations

from l1stream.engine.job import SPLIT_EVERY
from l1stream.errors import UsageError
from l1stream.exact import metric
from l1stream.exact.state import L1State, chunk_state


def mean_absolute_error(y_true=None, y_pred=None, *, sample_weight=None, multioutput="uniform_average",
                        nan_policy: str = "raise", actual=None, prediction=None, compute: bool = True):
    """scikit-learn's ``mean_absolute_error``, exact; also over Dask arrays (out of core).

    With Dask arrays, ``compute=False`` returns a ``dask.delayed`` of the figure.  See
    :func:`l1stream.exact.metric.mean_absolute_error` for the parameters.

    Examples
    --------
    >>> mean_absolute_error([10, 11, 12, 13], [10, 12, 14, 11])
    1.25
    """
    y_true = metric._alias(y_true, actual, "y_true", "actual")
    y_pred = metric._alias(y_pred, prediction, "y_pred", "prediction")
    if not any(_is_dask_array(x) for x in (y_true, y_pred, sample_weight)):
        return metric.mean_absolute_error(y_true, y_pred, sample_weight=sample_weight, multioutput=multioutput,
                                          nan_policy=nan_policy)
    import dask
    import dask.array as da

    y_true, y_pred = da.asarray(y_true), da.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim not in (1, 2):
        raise UsageError(f"y_true and y_pred are expected to be 1-D or 2-D of one shape, but got {y_true.shape} and "
                         f"{y_pred.shape}")
    y_pred = y_pred.rechunk(y_true.chunks)
    weight = None if sample_weight is None else da.asarray(sample_weight).rechunk((y_true.chunks[0],))
    outputs = 1 if y_true.ndim == 1 else y_true.shape[1]
    true_blocks = y_true.to_delayed().reshape(-1, 1 if y_true.ndim == 1 else y_true.numblocks[1])
    pred_blocks = y_pred.to_delayed().reshape(true_blocks.shape)
    weight_blocks = [None] * true_blocks.shape[0] if weight is None else list(weight.to_delayed())
    block_states = [dask.delayed(_block_states, pure=True)(list(t), list(p), w, outputs, nan_policy)
                    for t, p, w in zip(true_blocks, pred_blocks, weight_blocks)]
    while len(block_states) > 1:
        block_states = [dask.delayed(_merge, pure=True)(block_states[i:i + SPLIT_EVERY])
                        for i in range(0, len(block_states), SPLIT_EVERY)]
    figure = dask.delayed(metric.combine_outputs, pure=True)(block_states[0], multioutput)
    return figure.compute() if compute else figure


def _block_states(true_parts: list, pred_parts: list, weight, outputs: int, nan_policy: str) -> list:
    """One exact state per output for one row block (its column blocks side by side)."""
    import numpy as np

    t = np.concatenate(true_parts, axis=1) if true_parts[0].ndim == 2 else true_parts[0]
    p = np.concatenate(pred_parts, axis=1) if pred_parts[0].ndim == 2 else pred_parts[0]
    if t.ndim == 1:
        return [chunk_state(t, p, weight, nan_policy=nan_policy, names=("y_true", "y_pred", "sample_weight"))]
    return [chunk_state(t[:, j], p[:, j], weight, nan_policy=nan_policy,
                        names=(f"y_true[:, {j}]", f"y_pred[:, {j}]", "sample_weight")) for j in range(outputs)]


def _merge(parts: list) -> list:
    out = [L1State.empty() for _ in parts[0]]
    for states in parts:
        out = [a.merge(b) for a, b in zip(out, states)]
    return out


def _is_dask_array(value) -> bool:
    return type(value).__module__.startswith("dask.array") and hasattr(value, "chunks")
