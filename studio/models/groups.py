"""Parameter groups from the stem to the head, for discriminative rates and (gradual) unfreezing."""

from __future__ import annotations

import torch
from timm.models import group_parameters


def block_groups(model: torch.nn.Module, coarse: bool = True) -> list[list[torch.nn.Parameter]]:
    """The model's parameters as groups ordered from the stem (0) to the classifier head (last).

    Uses the model's own timm `group_matcher` (stages when coarse); parameters it does not name
    fall into the last group, which is where timm puts the classifier.
    """
    named = dict(model.named_parameters())
    matcher = model.group_matcher(coarse=coarse) if hasattr(model, "group_matcher") else None
    if matcher is None:
        # Not a timm model with a matcher: everything but the classifier, then the classifier.
        head = (
            {id(p) for p in model.get_classifier().parameters()}
            if hasattr(model, "get_classifier")
            else set()
        )
        body = [p for p in named.values() if id(p) not in head]
        return [g for g in (body, [p for p in named.values() if id(p) in head]) if g]
    grouped = group_parameters(model, matcher, reverse=False)
    ordered = [[named[n] for n in grouped[key]] for key in sorted(grouped)]
    head_ids = (
        {id(p) for p in model.get_classifier().parameters()} if hasattr(model, "get_classifier") else set()
    )
    if head_ids and not all(id(p) in head_ids for p in ordered[-1]):
        # Keep the classifier in a group of its own so it can take the head's learning rate.
        ordered = [[p for p in g if id(p) not in head_ids] for g in ordered]
        ordered = [g for g in ordered if g] + [[p for p in named.values() if id(p) in head_ids]]
    return ordered
