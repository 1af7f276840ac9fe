"""Several networks as one model: the weighted average of their class probabilities.

Auto keeps its fine-tuned network averaged with the linear probe on the pretrained backbone: the two err
on different images (flowers, 3 seeds: 12-14 mistakes each of 150, 5-8 shared), so their average is right
more often than either. The members' own (uncalibrated) probabilities are averaged; the run's calibration
temperature applies to the average. The module's output is the log of that average, so everything that
turns a model's logits into probabilities (softmax, the calibration temperature, the exported graph)
works on it unchanged: softmax(log p) = p exactly.
"""

from __future__ import annotations

import math

import torch


class ProbabilityAverage(torch.nn.Module):
    """log(sum_i w_i softmax(member_i(x))), computed as a logsumexp (no underflow to log 0)."""

    def __init__(self, members: list[torch.nn.Module], weights: list[float]) -> None:
        super().__init__()
        if len(members) != len(weights) or not members:
            raise ValueError("an ensemble needs one weight per member, and at least one member")
        total = float(sum(weights))
        if total <= 0 or any(w <= 0 for w in weights):
            raise ValueError(f"ensemble weights must be positive, got {weights}")
        self.members = torch.nn.ModuleList(members)
        self.weights = [float(w) / total for w in weights]
        # Not in the state dict: the checkpoint records the weights beside it (studio.predict.checkpoint).
        self.register_buffer("log_weights", torch.tensor([math.log(w) for w in self.weights]).view(-1, 1, 1),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_probs = torch.stack([torch.log_softmax(member(x).float(), dim=1) for member in self.members])
        return torch.logsumexp(log_probs + self.log_weights, dim=0)
