"""'Unlike the training images': the k-nearest-neighbour distance in the pretrained feature space
(studio.predict.novelty) flags images of another domain, not the model's own kind of image, and the
studio, its evaluation and the checkpoint agree on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from studio.data.store import Project
from studio.errors import StudioError
from studio.predict.checkpoint import build_model, make_checkpoint, read_checkpoint
from studio.predict.ensemble import ProbabilityAverage
from studio.predict.evaluate import evaluate
from studio.predict.novelty import (
    PROBE_MEMBER_NAME,
    NoveltyScored,
    carries_pretrained_network,
    fit_novelty,
    kth_distance,
    novelty_network,
)
from studio.predict.predictor import Predictor
from studio.train import TrainConfig, train
from studio.ui.demo_data import fill_demo_project


def _clusters(rng: np.random.Generator, n: int, dim: int = 32) -> tuple[np.ndarray, np.ndarray]:
    centers = rng.normal(size=(3, dim)) * 4
    targets = np.arange(n) % 3
    return centers[targets] + rng.normal(size=(n, dim)), targets


def test_the_threshold_keeps_the_training_images_scored_leave_one_out():
    rng = np.random.default_rng(0)
    features, targets = _clusters(rng, 300)
    fitted = fit_novelty(features, targets, seed=0, k=5, keep=0.99)
    reference = fitted["reference"].numpy()
    assert fitted["n"] == 300 and np.allclose(np.linalg.norm(reference, axis=1), 1, atol=1e-5)
    similarity = reference @ reference.T
    np.fill_diagonal(similarity, -np.inf)  # each against the others: an image is not its own neighbour
    within = (kth_distance(similarity, 5) <= fitted["threshold"]).mean()
    assert 0.985 <= within < 1.0  # 99%, not every one: the threshold is a quantile, not the maximum
    # New points of the same clusters mostly pass; points elsewhere are far.
    near, _ = _clusters(np.random.default_rng(0), 300)
    fresh = near + np.random.default_rng(1).normal(size=near.shape) * 0.1
    far = np.random.default_rng(2).normal(size=(50, 32)) * 4
    def scores(x):
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        return kth_distance(x @ reference.T, 5)
    assert (scores(fresh) > fitted["threshold"]).mean() < 0.05
    assert (scores(far) > fitted["threshold"]).mean() > 0.9


def test_large_sets_keep_a_stratified_reference_and_tiny_ones_none():
    rng = np.random.default_rng(0)
    features, targets = _clusters(rng, 3000)
    fitted = fit_novelty(features, targets, seed=0, max_reference=600)
    assert fitted["n"] == 600
    assert fit_novelty(features[:2], targets[:2], seed=0) is None
    assert fit_novelty(features[:4], targets[:4], seed=0)["k"] == 3  # at most the others there are


def test_the_score_reads_the_features_the_classifier_reads_in_the_same_pass():
    torch.manual_seed(0)
    network = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=3).eval()
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        pooled = network.forward_head(network.forward_features(x), pre_logits=True)
        reference = torch.nn.functional.normalize(torch.randn(10, pooled.shape[1]), dim=1)
        scored = NoveltyScored(network, network, reference, k=2).eval()(x)
        logits = network(x)
    assert scored.shape == (4, 4) and torch.allclose(scored[:, :3], logits)
    expected = kth_distance(torch.nn.functional.normalize(pooled, dim=1).numpy() @ reference.numpy().T, 2)
    assert np.allclose(scored[:, 3].numpy(), expected, atol=1e-5)
    # In an average, the probe member's features are read (the fine-tuned member's are not generic).
    tuned = timm.create_model("tf_efficientnet_lite0", num_classes=3)
    average = ProbabilityAverage([tuned, network], [0.5, 0.5])
    checkpoint = {"ensemble": {"weights": [0.5, 0.5]},
                  "extra": {"ensemble_members": ["fine-tuned network", PROBE_MEMBER_NAME]}}
    assert novelty_network(average, checkpoint) is network and carries_pretrained_network(checkpoint)
    alone = {"extra": {}}
    assert novelty_network(network, alone) is None and not carries_pretrained_network(alone)


def _other_domain(folder: Path) -> list[str]:
    """Colour pictures nothing like the demo's grey digits: noise, gradients, stripes, checkers."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:120, 0:120]
    arrays = [rng.integers(0, 256, (120, 120, 3), dtype=np.uint8),
              np.stack([255 - y * 1.2, x * 0.8 + 40, y * 0.5], axis=-1),
              np.stack([(np.sin(x / 5) > 0) * 200 + 30, y * 0 + 120, (np.cos(y / 7) > 0) * 180], axis=-1),
              np.stack([((x // 15 + y // 15) % 2) * 255, x * 2, 255 - x * 2], axis=-1),
              np.stack([x * 0 + 20, 200 - y, x], axis=-1)]
    paths = []
    for i, array in enumerate(arrays):
        Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(folder / f"other_{i}.png")
        paths.append(str(folder / f"other_{i}.png"))
    return paths


@pytest.fixture(scope="module")
def digits_probe(tmp_path_factory):
    root = tmp_path_factory.mktemp("novelty")
    with Project.create(root / "digits") as project:
        fill_demo_project(project)
        result = train(project, TrainConfig(strategy="linear", image_size=96, device="cpu", seed=0))
        own = project.dataset(labeled_only=True).query("split == 'val'")["path"].tolist()
    return result, own, _other_domain(root / "other")


def test_images_of_another_domain_are_flagged_unlike_the_training_images(digits_probe):
    result, own, others = digits_probe
    assert result.novelty and result.novelty["k"] >= 1
    predictor = Predictor.from_run(result.run_dir, "cpu")
    foreign = predictor.predict(others)
    assert all(p["unknown"] and p["unlike_training"] for p in foreign), foreign
    assert all(len(p["top"]) >= 1 for p in foreign)  # the guesses are still given
    mine = predictor.predict(own)
    assert np.mean([p["unlike_training"] for p in mine]) <= 0.05
    # The evaluation counts the same rule: its rate is the share of its own val images flagged.
    report = evaluate(result.run_dir, device="cpu")
    assert report["novelty"]["unlike_rate"] == pytest.approx(np.mean([p["unlike_training"] for p in mine]))
    assert report["unknown_rate"] == pytest.approx(np.mean([p["unknown"] for p in mine]))


def test_a_damaged_novelty_record_is_refused(digits_probe):
    result, _, _ = digits_probe
    checkpoint = read_checkpoint(result.run_dir)
    checkpoint["novelty"] = {**checkpoint["novelty"], "reference": torch.zeros(4, 7)}  # wrong width
    with pytest.raises(StudioError, match="novelty record is damaged"):
        build_model(checkpoint)
    # A model without a probe network of its own: the backbone stored beside it must load, exactly.
    alone = read_checkpoint(result.run_dir)
    alone["extra"] = {}
    alone["novelty"] = {**alone["novelty"], "backbone_state": {"conv_stem.weight": torch.zeros(1)}}
    with pytest.raises(StudioError, match="novelty record is damaged"):
        build_model(alone)


def test_a_fine_tune_alone_carries_no_novelty_network():
    network = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=2)
    checkpoint = make_checkpoint(network, backbone="tf_efficientnet_lite0", class_names=["a", "b"],
                                 preprocessing={"image_size": 64}, strategy="finetune")
    assert not carries_pretrained_network(checkpoint)


@pytest.mark.slow
def test_a_fine_tune_kept_alone_scores_novelty_with_the_pretrained_backbone_beside_it(tmp_path, monkeypatch):
    from studio.export import export_run
    from studio.train import strategies

    monkeypatch.setattr(strategies, "clearly_better", lambda a, b: False)  # the probe never wins outright
    with Project.create(tmp_path / "digits") as project:
        fill_demo_project(project)
        rows = project.dataset(labeled_only=True).query("split == 'train'")
        noisy = rows.sample(frac=0.4, random_state=0)  # a probe that is not perfect: auto fine-tunes
        shuffled = np.random.default_rng(0).permutation(noisy["label"].to_numpy())
        project.set_labels([(int(i), str(label)) for i, label in zip(noisy["image_id"], shuffled)])
        # Three epochs and a budget they fit in on any machine: the test must not hang on the CPU's speed.
        result = train(project, TrainConfig(strategy="auto", ensemble=False, image_size=96, device="cpu",
                                            seed=0, epochs=3, time_budget_s=600, candidates=()))
        own = project.dataset(labeled_only=True).query("split == 'val'")["path"].tolist()
    assert result.strategy == "finetune", result.reason
    checkpoint = read_checkpoint(result.run_dir)
    assert "ensemble" not in checkpoint and "backbone_state" in checkpoint["novelty"]
    loaded = build_model(checkpoint)
    assert loaded.novelty_backbone is not None
    predictor = Predictor(loaded, "cpu")
    others = _other_domain(tmp_path / "other")
    assert all(p["unlike_training"] for p in predictor.predict(others))
    assert np.mean([p["unlike_training"] for p in predictor.predict(own)]) <= 0.1
    # The exported graph carries the backbone beside the fine-tune: the bundle flags the same images.
    exported = export_run(result.run_dir, tmp_path / "bundle", "onnx")
    assert exported["parity"]["passed"] and exported["parity"]["novelty_max_abs_diff"] <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["finetune", "two-stage"])
def test_a_manual_fine_tune_gets_the_novelty_rule_without_a_confidence_threshold(tmp_path, strategy):
    from studio.export.model_card import _decision

    with Project.create(tmp_path / "digits") as project:
        fill_demo_project(project)
        result = train(project, TrainConfig(strategy=strategy, epochs=1, image_size=64, device="cpu", seed=0))
        own = project.dataset(labeled_only=True).query("split == 'val'")["path"].tolist()
    assert result.status == "done" and result.novelty, result.reason
    checkpoint = read_checkpoint(result.run_dir)
    # No held-out training images: no calibration, no confidence threshold; the novelty test needs neither.
    assert "calibration" not in checkpoint and not checkpoint.get("unknown_threshold")
    assert checkpoint["novelty"]["n"] == result.novelty["n"]
    predictor = Predictor.from_run(result.run_dir, "cpu")
    foreign = predictor.predict(_other_domain(tmp_path / "other"))
    assert all(p["unknown"] and p["unlike_training"] for p in foreign), foreign
    mine = predictor.predict(own)
    assert np.mean([p["unknown"] for p in mine]) <= 0.1
    report = evaluate(result.run_dir, device="cpu")
    assert report["unknown_rate"] == pytest.approx(report["novelty"]["unlike_rate"])
    card = "\n".join(_decision(checkpoint))
    assert "No confidence threshold" in card and "unlike_training" in card


def test_the_novelty_pass_reads_a_cached_probe_pass_or_extracts_the_plain_view_alone(tmp_path):
    """The test reads the plain view only: a fine-tune's pass extracts that view alone, and a project whose
    probe cached both views (plain and mirrored) computes nothing more."""

    def views_per_cache(project: Project) -> list[int]:
        caches = sorted((project.cache_dir / "features").iterdir())
        return [np.load(c / "features.npz")["features"].shape[1] for c in caches]

    settings = {"epochs": 1, "image_size": 64, "device": "cpu", "seed": 0}
    with Project.create(tmp_path / "alone") as project:
        fill_demo_project(project)
        assert train(project, TrainConfig(strategy="finetune", **settings)).novelty
        assert views_per_cache(project) == [1]
    with Project.create(tmp_path / "probed") as project:
        fill_demo_project(project)
        train(project, TrainConfig(strategy="linear", **settings))
        assert views_per_cache(project) == [2]
        assert train(project, TrainConfig(strategy="finetune", **settings)).novelty
        assert views_per_cache(project) == [2]


def test_a_run_from_random_weights_stores_no_novelty_reference(tmp_path):
    with Project.create(tmp_path / "digits") as project:
        fill_demo_project(project)
        config = TrainConfig(strategy="scratch", epochs=1, image_size=64, device="cpu", seed=0)
        result = train(project, config)
    assert result.status == "done" and not result.novelty
    assert "novelty" not in read_checkpoint(result.run_dir)


@pytest.mark.slow
def test_a_k_nearest_neighbour_probe_gets_the_novelty_rule(tmp_path):
    with Project.create(tmp_path / "digits") as project:
        fill_demo_project(project)
        config = TrainConfig(strategy="linear", head="knn", image_size=64, device="cpu", seed=0)
        result = train(project, config)
        own = project.dataset(labeled_only=True).query("split == 'val'")["path"].tolist()
    assert result.novelty and not read_checkpoint(result.run_dir).get("unknown_threshold")
    predictor = Predictor.from_run(result.run_dir, "cpu")
    assert all(p["unlike_training"] for p in predictor.predict(_other_domain(tmp_path / "other")))
    assert np.mean([p["unknown"] for p in predictor.predict(own)]) <= 0.1
