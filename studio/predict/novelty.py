""""Unlike the training images": a distance test in the pretrained backbone's feature space.

A classifier's confidence alone is a weak test for images of another domain: softmax over a few classes
is often confident on anything (an MRI model called 89% of flower photos confidently; a flowers probe
62.5% of brain scans). ImageNet features, though, separate domains well: the cosine distance from an
image's pooled features to its k-th nearest training image (Sun et al. 2022, "Out-of-distribution
detection with deep nearest neighbors") flagged 99.5-100% of the other set's images at a threshold that
flags 0-0.7% of the model's own validation images (flowers <-> MRI, Lite0). It does not catch a new
class of the same domain (a flower species left out of training: 0-23% flagged); the confidence rule
covers part of that. Per-class distances did no better there (AUROC, own val against the left-out
class, mean of the 5 classes left out: k-th nearest of the predicted class 0.73, class-conditional
Mahalanobis 0.69, this test 0.72, the probe's confidence 0.74).

The features are those of the network that is the pretrained backbone: a linear probe, or the probe
member of auto's average. They are captured where that network's classifier reads them, inside the same
forward pass that gives the logits, so a prediction costs nothing more. A model without such a network
(a fine-tune kept alone) keeps a copy of the pretrained backbone beside it for this (one more forward
pass per image): fine-tuned features are fitted to the training images, so their own distances would
not say how far new images of the same kind fall. `NoveltyScored` appends the score to the logits as
one more column: the inference runner, onnxruntime and the exported graph carry it
unchanged. The threshold keeps `KEEP_TRAINING` of the training images, each scored against the others
(leave one out).
"""

from __future__ import annotations

import numpy as np
import timm
import torch
from sklearn.preprocessing import normalize

K_NEAREST = 5
KEEP_TRAINING = 0.99
MAX_REFERENCE = 1000  # training images kept as neighbours: ~5 MB of float32 at 1280 features
PROBE_MEMBER_NAME = "linear probe on the pretrained backbone"  # auto's name for the probe member


def kth_distance(similarity: np.ndarray, k: int) -> np.ndarray:
    """1 - the k-th largest cosine similarity of each row."""
    k = min(k, similarity.shape[1])
    return 1.0 - np.sort(similarity, axis=1)[:, -k]


def fit_novelty(features: np.ndarray, targets: np.ndarray, *, seed: int,
                k: int = K_NEAREST, keep: float = KEEP_TRAINING,
                max_reference: int = MAX_REFERENCE) -> dict | None:
    """{"k", "threshold", "keep", "n", "reference"} from the training images' pooled features (N x D,
    the identity view); None under three images. Above `max_reference` images a stratified random
    subset is kept. The threshold is the `keep` quantile of each reference image's distance to its k-th
    nearest other reference image."""
    features = np.asarray(features, dtype=np.float32)
    if len(features) < 3:
        return None
    if len(features) > max_reference:
        rng = np.random.default_rng(seed)
        share = max_reference / len(features)
        chosen = []
        for label in np.unique(targets):
            rows = np.flatnonzero(targets == label)
            chosen.extend(rng.choice(rows, size=max(1, round(len(rows) * share)), replace=False))
        features = features[np.sort(np.asarray(chosen))[:max_reference]]
    reference = normalize(features.astype(np.float64))  # unit rows: a dot product is the cosine
    k = int(min(k, len(reference) - 1))
    similarity = reference @ reference.T
    np.fill_diagonal(similarity, -np.inf)  # leave one out: an image is not its own neighbour
    threshold = float(np.quantile(kth_distance(similarity, k), keep))
    return {"k": k, "threshold": threshold, "keep": keep, "n": len(reference),
            "reference": torch.from_numpy(reference.astype(np.float32))}


def _probe_index(checkpoint: dict) -> int | None:
    """Which network of a checkpoint's model is the pretrained backbone with a linear head: -1 for the
    model itself (a linear probe), a member's index in an average, None for none (a fine-tune alone)."""
    extra = checkpoint.get("extra") or {}
    if checkpoint.get("ensemble"):
        names = extra.get("ensemble_members") or []
        return names.index(PROBE_MEMBER_NAME) if PROBE_MEMBER_NAME in names else None
    return -1 if "linear_head" in extra else None


def carries_pretrained_network(checkpoint: dict) -> bool:
    """Whether the model holds the pretrained backbone unchanged (its probe network scores novelty; a
    model without one, a fine-tune alone, gets a copy of the pretrained backbone beside it)."""
    return _probe_index(checkpoint) is not None


def novelty_network(model: torch.nn.Module, checkpoint: dict) -> torch.nn.Module | None:
    """The network of `model` that is the pretrained backbone with a linear head (a linear probe, or the
    probe member of an average), or None when the model has none (a fine-tune alone)."""
    index = _probe_index(checkpoint)
    if index == -1:
        return model
    members = getattr(model, "members", None)
    if index is None or members is None or index >= len(members):
        return None
    return members[index]


def separate_backbone(checkpoint: dict) -> torch.nn.Module | None:
    """The pretrained backbone stored beside a model that has none of its own (`novelty.backbone_state`,
    the timm model without a classifier), or None. Raises what timm / torch raise for a damaged state."""
    stored = checkpoint.get("novelty") or {}
    state = stored.get("backbone_state")
    if state is None:
        return None
    network = timm.create_model(checkpoint["backbone"], pretrained=False, num_classes=0)
    network.load_state_dict(state, strict=True)
    return network.eval()


class NoveltyScored(torch.nn.Module):
    """The model's outputs with one more column: the cosine distance from the pooled features of `network`
    (a part of `model`, or with `separate` a pretrained backbone beside it) to their k-th nearest training
    image."""

    def __init__(self, model: torch.nn.Module, network: torch.nn.Module, reference: torch.Tensor,
                 k: int, separate: bool = False) -> None:
        super().__init__()
        self.model = model
        self.network = network  # inside model too unless separate: the parameters are shared
        self.separate = separate
        self.k = int(min(k, len(reference)))
        self.register_buffer("reference", reference.float().contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.separate:  # a timm model without a classifier gives its pooled features
            outputs, pooled = self.model(x).float(), self.network(x)
        else:
            captured: list[torch.Tensor] = []
            # What the classifier reads is the pooled feature vector, whatever the architecture's pooling.
            handle = self.network.get_classifier().register_forward_pre_hook(
                lambda _module, args: captured.append(args[0]))
            try:
                outputs = self.model(x).float()
            finally:
                handle.remove()
            pooled = captured[-1]
        pooled = pooled.float().flatten(1)
        pooled = pooled / pooled.norm(dim=1, keepdim=True).clamp_min(1e-12)
        nearest = torch.topk(pooled @ self.reference.T, self.k, dim=1).values[:, -1]
        return torch.cat([outputs, (1.0 - nearest).unsqueeze(1)], dim=1)


def scoring_model(model: torch.nn.Module, checkpoint: dict,
                  separate: torch.nn.Module | None = None) -> torch.nn.Module:
    """`model`, or `NoveltyScored` around it when the checkpoint holds a novelty reference (`separate`:
    the pretrained backbone stored beside a model without one, `separate_backbone`)."""
    stored = checkpoint.get("novelty")
    if not stored:
        return model
    network = novelty_network(model, checkpoint)
    if network is None and separate is None:
        return model
    return NoveltyScored(model, network if network is not None else separate, stored["reference"],
                         stored["k"], separate=network is None).eval()


def ordinal(number: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 21st: how the run log and the model card name the k-th neighbour."""
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"
