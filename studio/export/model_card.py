"""model_card.md: what the exported model is, what it was trained on, how well it did, how it was checked."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from studio.export import standalone
from studio.predict.novelty import ordinal
from studio.train.runs import CONFIG_FILE, EVAL_FILE, read_json


def _run_file(run_dir: Path, name: str) -> dict:
    """A run file through the run store's one reader; {} when it is missing, damaged or not an object."""
    data = read_json(run_dir / name)
    return data if isinstance(data, dict) else {}


def _percent(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, (int, float)) else "not recorded"


def _data_table(class_names: list[str], config: dict) -> list[str]:
    counts = config.get("class_counts")
    rows = ["", "| class | training images |", "|---|---|"]
    for index, name in enumerate(class_names):
        count = counts[index] if isinstance(counts, list) and index < len(counts) else "?"
        rows.append(f"| {name} | {count} |")
    return rows


def _metrics(evaluation: dict) -> list[str]:
    if not evaluation:
        return ["No evaluation recorded (eval.json missing): run `studio eval RUN` before exporting."]
    lines = [f"- Validation images: {evaluation.get('n', '?')}",
             f"- Accuracy: {_percent(evaluation.get('accuracy'))}",
             f"- Macro F1: {_percent(evaluation.get('macro_f1'))}"]
    tta = evaluation.get("tta")
    if isinstance(tta, dict):
        lines.append(f"- Accuracy with the studio's test-time augmentation: {_percent(tta.get('accuracy'))}")
    per_class = evaluation.get("per_class") or {}
    if per_class:
        lines += ["", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        for name, row in per_class.items():
            lines.append(f"| {name} | {_percent(row.get('precision'))} | {_percent(row.get('recall'))} | "
                         f"{_percent(row.get('f1'))} | {row.get('support', '?')} |")
    return lines


def _tta_line(checkpoint: dict) -> str:
    choice = checkpoint.get("tta") or {}
    if choice.get("tta") and not choice.get("n"):
        return "- predict.py predicts with test-time augmentation by default; `--no-tta` turns it off."
    if not choice.get("tta"):
        return ("- predict.py predicts without test-time augmentation unless told `--tta`"
                + (f" (the run's choice: it clearly hurt on {choice['n']} held-out training images)."
                   if choice else "."))
    return (f"- predict.py predicts with test-time augmentation by default, as the run chose on "
            f"{choice['n']} held-out training images ({choice['accuracy_tta']:.1%} with it, "
            f"{choice['accuracy_plain']:.1%} without); `--no-tta` turns it off.")


def _decision(checkpoint: dict) -> list[str]:
    """The calibration, the rejection rule and the TTA default the bundle applies (decision.json)."""
    calibration = checkpoint.get("calibration") or {}
    threshold = float(checkpoint.get("unknown_threshold") or 0.0)
    novelty = checkpoint.get("novelty")
    lines = []
    if calibration:
        lines.append(
            f"- Probabilities are temperature-scaled inside the model (T = {calibration['temperature']:.3f}, "
            f"fitted on {calibration.get('fitted_on') or 'held-out training images'}; expected calibration "
            f"error there {calibration['ece_before']:.3f} before, {calibration['ece_after']:.3f} after)."
        )
    else:
        lines.append("- This run stored no calibration: probabilities are the softmax of the logits.")
    if threshold:
        lines.append(
            f'- A prediction whose top probability is below {threshold:.3f} is flagged `"unknown": true` '
            'by predict.py ("not sure": none of the classes fits well; the top guesses are still given). '
            "The threshold keeps 95% of the correctly classified held-out training images; it is in "
            "decision.json."
        )
    elif novelty:
        lines.append("- No confidence threshold: this run kept no training images aside to fit one on; "
                     "only the test below flags a prediction unknown.")
    else:
        lines.append("- This run stored no rejection rule: no prediction is flagged unknown.")
    if novelty:
        lines.append(
            f"- An image is {'also ' if threshold else ''}flagged unknown (`\"unlike_training\": true`) "
            "when the model's second output, "
            f"the cosine distance of its pretrained features to the {ordinal(int(novelty['k']))} nearest of "
            f"{int(novelty['n'])} training images, is above {float(novelty['threshold']):.3f} "
            f"(`novelty_threshold` in decision.json; {float(novelty['keep']):.0%} of those training images "
            "are within it, each scored against the others). This catches images of another domain (photos "
            "given to a scan model, and the reverse), which a confident softmax alone often does not; it "
            "does not catch a new class of the same kind of image."
        )
    lines.append(_tta_line(checkpoint))
    return lines


def _ensemble(checkpoint: dict) -> list[str]:
    """A line naming the members of an averaged model (auto's fine-tune + probe), none otherwise."""
    weights = (checkpoint.get("ensemble") or {}).get("weights")
    if not weights:
        return []
    names = (checkpoint.get("extra") or {}).get("ensemble_members") or [f"network {i + 1}" for i in
                                                                        range(len(weights))]
    parts = ", ".join(f"{name} ({weight:.2f})" for name, weight in zip(names, weights))
    return [f"- Ensemble: the average of {len(weights)} networks' probabilities, one graph: {parts}"]


def render(*, run_dir: Path, checkpoint: dict, fmt: str, model_file: str, parity: dict,
           exported: datetime | None = None) -> str:
    """The card's markdown text."""
    config = _run_file(run_dir, CONFIG_FILE)
    evaluation = _run_file(run_dir, EVAL_FILE)
    result = config.get("result") or {}
    pre = checkpoint["preprocessing"]
    class_names = list(checkpoint["class_names"])
    exported = exported or datetime.now().astimezone()
    source = checkpoint.get("weights_source") or config.get("weights_source") or {}
    lines = [
        f"# Image classifier: {', '.join(class_names)}",
        "",
        (
            f"Exported from the studio run `{run_dir.name}` on "
            f"{exported.strftime('%Y-%m-%d %H:%M %Z').strip()} as {fmt} (`{model_file}`)."
        ),
        "",
        "## Model",
        (
            f"- Backbone: `{checkpoint['backbone']}` (timm), pretrained weights: "
            f"{source.get('kind', 'not recorded')}"
        ),
        f"- Training strategy: {result.get('strategy') or checkpoint.get('strategy', 'not recorded')}",
        *_ensemble(checkpoint),
        f"- Classes ({len(class_names)}): {', '.join(class_names)}",
        f"- Epochs run: {result.get('epochs_run', 'not recorded')}",
        "",
        "## Data",
        (
            f"- Training images: {config.get('n_train', 'not recorded')}, validation images: "
            f"{config.get('n_val', 'not recorded')}"
        ),
        *_data_table(class_names, config),
        "",
        "## Validation metrics",
        *_metrics(evaluation),
        "",
        '## Confidence and "unknown"',
        *_decision(checkpoint),
        "",
        "## Input and preprocessing",
        (
            f"- Input `pixels`: uint8, N x {pre['image_size']} x {pre['image_size']} x 3, RGB. Output "
            "`probabilities`: float32, N x classes, in the order of classes.json."
        ),
        (
            f"- Resize the shorter side to {pre['resize_shorter_to']} px ({_resampling_words(pre)}), "
            f"center-crop {pre['image_size']} x {pre['image_size']}."
        ),
        (
            f"- Normalization (inside the model): (pixels / 255 - mean) / std, mean {pre['mean']}, "
            f"std {pre['std']}."
        ),
        ("- `predict.py` does all of it with numpy and Pillow: `python predict.py photo.jpg` or a folder "
         "(searched recursively; `--json`, `--csv OUT` with every class's probability, `--tta` or "
         "`--no-tta` to override the run's choice)."),
        "",
        "## Parity with the studio",
        (
            f"- Max absolute difference of probabilities from the studio's predictor: "
            f"{parity['max_abs_diff']:.2e} "
            + (f"(with `--tta` {parity['tta_max_abs_diff']:.2e}) " if "tta_max_abs_diff" in parity else "")
            + f"over {parity['images']} images ({parity.get('validation_images', 0)} validation, "
            f"{parity.get('generated_images', 0)} generated); limit {parity['tolerance']:.0e}. "
            "Details in parity.json."
        ),
        (
            "- `--tta` averages the studio's test-time views: the crop and the whole frame (shorter side "
            "resized to the input size), each also mirrored, as `studio predict --tta` and the evaluation."
        ),
        "",
        "## Limitations",
        (
            "- Trained on a small labeled set: expect it to work only on images like the training images "
            "(same kind of camera, framing and subjects). Check its mistakes before relying on it."
        ),
    ]
    return "\n".join(lines) + "\n"


def _resampling_words(pre: dict) -> str:
    if pre.get("resampler") == standalone.RESAMPLER:
        return f"Pillow's {pre['interpolation']}, antialiased when shrinking, as timm's eval transform"
    return f"OpenCV's area averaging when shrinking, its {pre['interpolation']} when enlarging"
