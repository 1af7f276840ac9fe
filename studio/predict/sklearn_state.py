"""A fitted scikit-learn head as tensors and JSON, and back, so a checkpoint never holds a pickle.

Opening a pickled estimator runs whatever code the file names; these states hold only arrays (as torch
tensors), numbers, strings, lists and dicts, plus the name of each estimator class, which must be one of
the few the studio trains (`ALLOWED`). An estimator is rebuilt by setting its fitted attributes back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.calibration import CalibratedClassifierCV, _CalibratedClassifier, _SigmoidCalibration
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import Normalizer, StandardScaler
from sklearn.svm import SVC

from studio.errors import StudioError

ALLOWED = {
    cls.__name__: cls
    for cls in (
        Pipeline,
        StandardScaler,
        Normalizer,
        SVC,
        KNeighborsClassifier,
        LogisticRegression,
        CalibratedClassifierCV,
        _CalibratedClassifier,
        _SigmoidCalibration,
        StratifiedGroupKFold,
        StratifiedKFold,
        GroupKFold,
        KFold,
    )
}
_DROPPED = {"KNeighborsClassifier": ("_tree",)}  # a KD/ball tree is a compiled object: rebuilt as brute force


def to_state(value: Any) -> Any:
    """`value` (an estimator, or anything inside one) as tensors and JSON-like values."""
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return {"__objects__": [to_state(v) for v in value.tolist()], "shape": list(value.shape)}
        return {"__array__": torch.from_numpy(np.ascontiguousarray(value).copy()), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return {"__tuple__" if isinstance(value, tuple) else "__list__": [to_state(v) for v in value]}
    if isinstance(value, dict):
        return {"__dict__": {str(k): to_state(v) for k, v in value.items()}}
    name = type(value).__name__
    if ALLOWED.get(name) is type(value):
        dropped = _DROPPED.get(name, ())
        return {"__estimator__": name,
                "state": {k: to_state(v) for k, v in vars(value).items() if k not in dropped}}
    raise TypeError(f"cannot store a {type(value).__module__}.{name} in a checkpoint")


def from_state(state: Any) -> Any:
    """The value `to_state` made; StudioError for a class the studio does not train."""
    if isinstance(state, dict):
        if "__array__" in state:
            return state["__array__"].numpy().astype(state["dtype"], copy=True)
        if "__objects__" in state:
            items = np.empty(len(state["__objects__"]), dtype=object)
            items[:] = [from_state(v) for v in state["__objects__"]]
            return items.reshape(state["shape"])
        if "__list__" in state:
            return [from_state(v) for v in state["__list__"]]
        if "__tuple__" in state:
            return tuple(from_state(v) for v in state["__tuple__"])
        if "__dict__" in state:
            return {k: from_state(v) for k, v in state["__dict__"].items()}
        if "__estimator__" in state:
            cls = ALLOWED.get(state["__estimator__"])
            if cls is None:
                raise StudioError(
                    f"the checkpoint's head is a {state['__estimator__']!r}, which the studio does "
                    "not load; retrain the model"
                )
            estimator = cls.__new__(cls)
            estimator.__dict__.update({k: from_state(v) for k, v in state["state"].items()})
            if cls is KNeighborsClassifier:
                estimator._tree, estimator._fit_method = None, "brute"
            return estimator
        raise StudioError("the checkpoint's head is damaged (an unknown entry); retrain the model")
    return state
