"""Prediction from a trained run: Predictor (with TTA), evaluation metrics, Grad-CAM."""

from studio.predict.evaluate import evaluate, metrics_from_probs
from studio.predict.predictor import Predictor

__all__ = ["Predictor", "evaluate", "metrics_from_probs"]
