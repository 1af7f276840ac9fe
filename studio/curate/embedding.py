"""The embedding map: every image as a point in 2D (t-SNE of the cached features), colored by label.

t-SNE keeps each image near its nearest neighbours in feature space, so classes the backbone tells
apart form separate islands (a PCA plane, used before, overlaps them) and a wrong label shows as a
point of one color inside another's island. The frame is the data (image_id, x, y, label, split); the
plotly figure carries the image id in each point's `customdata` (and optionally a thumbnail for the
hover), so the UI can turn a box/lasso selection back into image ids (`selected_ids`) and bulk-label them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.preprocessing import normalize

from studio.curate.features import FeatureSet
from studio.data.store import Project

UNLABELED = "(unlabeled)"


TSNE_MIN_POINTS = 10  # fewer: a neighbourhood layout means nothing, the PCA plane is shown
PCA_DIMENSIONS = 50  # t-SNE runs on the top principal components (the usual speed-up; noise dims dropped)
LAYOUT_NAME = "t-SNE"
SVG_MAX_POINTS = 5000


def project_2d(features: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """N x 2 coordinates: t-SNE of L2-normalized features (cosine geometry, like the duplicate search).

    Repeatable for a seed; PCA for tiny sets.
    """
    features = np.asarray(features, dtype=np.float64)
    if len(features) == 0:
        return np.zeros((0, 2))
    unit = normalize(features)
    if len(features) < 3:  # PCA needs more points than components to say anything
        return np.c_[unit[:, 0] - unit[:, 0].mean(), np.zeros(len(features))]
    if len(features) < TSNE_MIN_POINTS:
        return PCA(n_components=2, random_state=seed).fit_transform(unit)
    reduced = PCA(n_components=min(PCA_DIMENSIONS, *unit.shape), random_state=seed).fit_transform(unit)
    perplexity = float(min(30.0, (len(features) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                learning_rate="auto").fit_transform(reduced)


def embedding_frame(project: Project, features: FeatureSet, *, seed: int = 0) -> pd.DataFrame:
    """image_id, x, y, label (UNLABELED for none), split, original_name for the images with features."""
    frame = project.dataset().set_index("image_id")
    ids = [int(i) for i in features.image_ids if int(i) in frame.index]
    coords = project_2d(features.rows(ids), seed=seed)
    rows = frame.loc[ids]
    return pd.DataFrame({
        "image_id": np.asarray(ids, dtype=np.int64),
        "x": coords[:, 0].round(5),
        "y": coords[:, 1].round(5),
        "label": [label if label is not None else UNLABELED for label in rows["label"]],
        "split": [split if split is not None else "" for split in rows["split"]],
        "original_name": rows["original_name"].tolist(),
    })


def embedding_figure(
    frame: pd.DataFrame,
    *,
    title: str = f"Embedding map ({LAYOUT_NAME} of backbone features)",
    thumbnails: Mapping[int, str] | None = None,
) -> go.Figure:
    """A scatter with one trace per label; hover shows image id, label, split and file name.

    `thumbnails` ({image id: image URL, e.g. a data: URI}) rides in each point's customdata[3] for a
    page script that shows the image beside the hover label (plotly's hover text cannot hold images).
    """
    figure = go.Figure()
    # SVG points select and hover anywhere (WebGL may be missing, e.g. in headless or remote browsers);
    # WebGL only where SVG would get slow.
    scatter = go.Scatter if len(frame) <= SVG_MAX_POINTS else go.Scattergl
    labels = sorted(set(frame["label"]) - {UNLABELED}) + (
        [UNLABELED] if (frame["label"] == UNLABELED).any() else []
    )
    for label in labels:
        part = frame[frame["label"] == label]
        figure.add_trace(scatter(
            x=part["x"], y=part["y"], mode="markers", name=label,
            marker={"size": 7, "opacity": 0.8, **({"color": "lightgray"} if label == UNLABELED else {})},
            customdata=np.c_[part["image_id"], part["split"], part["original_name"],
                             [(thumbnails or {}).get(int(i), "") for i in part["image_id"]]],
            hovertemplate="image %{customdata[0]}<br>" + f"label: {label}" +
                          "<br>split: %{customdata[1]}<br>%{customdata[2]}<extra></extra>",
        ))
    figure.update_layout(title=title, dragmode="lasso", legend_title_text="label",
                         xaxis={"title": f"{LAYOUT_NAME} 1"},
                         yaxis={"title": f"{LAYOUT_NAME} 2"}, template="plotly_white")
    return figure


def selected_ids(selection: Mapping | Iterable | None) -> list[int]:
    """Image ids from a plotly selection: {"points": [{"customdata": [id, ...]}, ...]} or a list of points."""
    if not selection:
        return []
    points = selection.get("points", []) if isinstance(selection, Mapping) else selection
    found = []
    for point in points:
        data = point.get("customdata") if isinstance(point, Mapping) else None
        if data is None:
            continue
        value = data[0] if isinstance(data, (list, tuple, np.ndarray)) else data
        found.append(int(value))
    return list(dict.fromkeys(found))


def ids_in_box(frame: pd.DataFrame, x_range: tuple[float, float], y_range: tuple[float, float]) -> list[int]:
    """Image ids whose point lies in the box (for a UI that reports a box selection as ranges)."""
    (x0, x1), (y0, y1) = sorted(x_range), sorted(y_range)
    inside = frame["x"].between(x0, x1) & frame["y"].between(y0, y1)
    return frame.loc[inside, "image_id"].astype(int).tolist()
