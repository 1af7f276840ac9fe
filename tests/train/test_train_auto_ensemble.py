"""Auto keeps its fine-tune averaged with the linear probe (one model file), unless the average is clearly
worse on held-out training images or the user asks for one network; every surface predicts the average."""

from __future__ import annotations

import json

import numpy as np
import pytest
import timm
import torch
from train_helpers import TINY_BACKBONE, make_project, tiny_config

from studio.export import export_run
from studio.export.parity import TOLERANCE, load_bundle_script
from studio.predict.checkpoint import build_model, load_model, read_checkpoint
from studio.predict.ensemble import ProbabilityAverage
from studio.predict.gradcam import grad_cam
from studio.predict.inference import TTA_VIEWS
from studio.predict.predictor import Predictor
from studio.train import heads, selection, strategies, train
from studio.train.selection import choose_ensemble


def test_probability_average_gives_the_weighted_mean_of_its_members_probabilities():
    torch.manual_seed(0)
    members = [timm.create_model(TINY_BACKBONE, pretrained=False, num_classes=3).eval() for _ in range(2)]
    x = torch.randn(4, 3, 64, 64)
    ensemble = ProbabilityAverage(members, [3.0, 1.0]).eval()  # weights are normalized
    assert ensemble.weights == [0.75, 0.25]
    with torch.no_grad():
        expected = 0.75 * torch.softmax(members[0](x), 1) + 0.25 * torch.softmax(members[1](x), 1)
        got = torch.softmax(ensemble(x), 1)
    assert torch.allclose(got, expected, atol=1e-6)
    with pytest.raises(ValueError):
        ProbabilityAverage(members, [1.0, 0.0])
    with pytest.raises(ValueError):
        ProbabilityAverage(members, [1.0])


def test_the_average_is_the_default_unless_it_clearly_hurts_on_held_out_images():
    targets = np.array([0, 1] * 15)
    right = np.eye(2)[targets] * 0.8 + 0.1
    wrong = right[:, ::-1]
    finetune = np.stack([right] * 4, axis=1)
    # The probe confidently wrong everywhere: the average (weight 0.6 on it) flips every answer.
    hurt = choose_ensemble(finetune, np.stack([wrong] * 4, axis=1), targets, 0.6, "t")
    assert hurt["ensemble"] is False and hurt["accuracy_ensemble"] == 0.0 and hurt["accuracy_finetune"] == 1.0
    # A probe that agrees: kept (a prior: the held-out images can only veto it).
    agree = choose_ensemble(finetune, finetune, targets, 0.5, "t")
    assert agree == {"ensemble": True, "probe_weight": 0.5, "fitted_on": "t", "n": 30,
                     "accuracy_finetune": 1.0, "accuracy_ensemble": 1.0}
    assert choose_ensemble(finetune[:0], finetune[:0], targets[:0], 0.5, "t")["ensemble"] is True


def _auto(tmp_path, monkeypatch, *, average_hurts: bool = False, finetune_clearly=None, **settings):
    # The probe never wins outright, a second fine-tune is never vetoed (unless the test says otherwise).
    monkeypatch.setattr(strategies, "clearly_better", finetune_clearly or (lambda a, b: False))
    monkeypatch.setattr(selection, "clearly_better", lambda a, b: average_hurts)
    project = make_project(tmp_path, classes=("cat", "dog", "owl"), per_class=9)
    data = project.dataset(labeled_only=True)
    rows = data[data["split"] == "train"]  # shuffled labels: the probe is not perfect, auto fine-tunes
    shuffled = np.random.default_rng(0).permutation(rows["label"].to_numpy())
    project.set_labels([(int(i), str(label)) for i, label in zip(rows["image_id"], shuffled)])
    result = train(project, tiny_config(strategy="auto", epochs=3, time_budget_s=600, seed=1, **settings))
    paths = project.dataset(labeled_only=True)["path"].tolist()
    project.close()
    return result, paths


def test_auto_keeps_the_fine_tune_averaged_with_the_probe_and_every_surface_predicts_it(tmp_path,
                                                                                      monkeypatch):
    result, paths = _auto(tmp_path, monkeypatch)
    assert result.status == "done" and result.strategy == "ensemble"
    assert "averaged with a linear probe refit on all" in result.reason
    checkpoint = read_checkpoint(result.run_dir)
    # The generous budget fits a second fine-tune: two fine-tuned networks share the fine-tune's half.
    assert checkpoint["ensemble"] == {"weights": [0.25, 0.25, 0.5]}
    assert checkpoint["extra"]["ensemble_members"] == [
        "fine-tuned network 1", "fine-tuned network 2", "linear probe on the pretrained backbone"]
    details = json.loads((result.run_dir / "config.json").read_text())["result"]["details"]
    assert details["ensemble"]["ensemble"] is True
    assert "held-out training images" in details["ensemble"]["fitted_on"]
    assert details["more_finetunes"][0]["kept"] is True and details["more_finetunes"][0]["seed"] == 2
    assert "a second fine-tune (seed 2" in result.reason
    fitted_on = details["calibration"]["fitted_on"]
    assert "averaged with a second fine-tune" in fitted_on and "averaged with the probe" in fitted_on
    assert details["probe_recipe"]["C"] is not None

    # The model's probabilities are the members' weighted average (then the run's calibration temperature).
    loaded = load_model(result.run_dir)
    assert isinstance(loaded.model, ProbabilityAverage) and len(loaded.model.members) == 3
    predictor = Predictor(loaded, "cpu")
    probs = predictor.probabilities(paths[:4], TTA_VIEWS)
    members = []
    for member in loaded.model.members:
        single = build_model({**checkpoint, "state_dict": member.state_dict(), "ensemble": None,
                              "calibration": None})
        members.append(Predictor(single, "cpu").probabilities(paths[:4], TTA_VIEWS))
    average = sum(w * m for w, m in zip(loaded.model.weights, members))
    temperature = loaded.temperature
    expected = np.exp(np.log(average) / temperature)
    expected /= expected.sum(axis=2, keepdims=True)
    assert np.abs(probs - expected).max() < 1e-5
    for a in range(3):  # three different networks
        for b in range(a):
            assert np.abs(members[a] - members[b]).max() > 1e-3

    # The reported accuracy is the saved model's; the exported graph predicts the same within 1e-4.
    report = export_run(result.run_dir, tmp_path / "bundle", "onnx")
    assert report["parity"]["max_abs_diff"] <= TOLERANCE
    card = (tmp_path / "bundle" / "model_card.md").read_text()
    assert ("Ensemble: the average of 3 networks' probabilities, one graph: fine-tuned network 1 (0.25), "
            "fine-tuned network 2 (0.25), linear probe on the pretrained backbone (0.50)") in card
    bundle = load_bundle_script(tmp_path / "bundle").BundleModel(tmp_path / "bundle")
    ours = predictor.predict(paths[:4], top_k=3)
    theirs = bundle.predict(paths[:4], top_k=3)
    for a, b in zip(ours, theirs):
        assert a["top"][0]["class"] == b["top"][0]["class"]
        assert abs(a["top"][0]["probability"] - b["top"][0]["probability"]) <= TOLERANCE
    cam = grad_cam(predictor, paths[0])  # both members' maps, weighted
    assert cam.heatmap.shape == (64, 64) and 0.0 <= cam.heatmap.min() and cam.heatmap.max() <= 1.0
    assert cam.class_name == ours[0]["top"][0]["class"]
    assert abs(cam.probability - predictor.predict(paths[0], tta=False)[0]["top"][0]["probability"]) < 1e-5


def test_one_fine_tune_with_the_probe_when_the_time_left_fits_no_second(tmp_path, monkeypatch):
    monkeypatch.setattr(strategies, "ANOTHER_FINETUNE_MARGIN", 1e9)  # no time is ever enough
    result, _ = _auto(tmp_path, monkeypatch)
    assert result.strategy == "ensemble" and "second fine-tune" not in result.reason
    assert read_checkpoint(result.run_dir)["ensemble"] == {"weights": [0.5, 0.5]}
    details = json.loads((result.run_dir / "config.json").read_text())["result"]["details"]
    assert "more_finetunes" not in details and "second fine-tune" not in details["calibration"]["fitted_on"]


def test_the_averaged_probe_keeps_the_recipe_its_held_out_calibration_saw(tmp_path, monkeypatch):
    # A recipe chosen again on every training image would differ here (C 3 first, 0.1 on any later
    # choice): the calibration and the unknown threshold were fitted with the first one.
    real_choice = heads.choose_logreg_recipe
    chosen_cs = iter([3.0])

    def choose(*args, **kwargs):
        return {**real_choice(*args, **kwargs), "C": next(chosen_cs, 0.1)}

    monkeypatch.setattr(heads, "choose_logreg_recipe", choose)
    monkeypatch.setattr(strategies, "ANOTHER_FINETUNE_MARGIN", 1e9)
    result, _ = _auto(tmp_path, monkeypatch)
    assert result.strategy == "ensemble"
    details = json.loads((result.run_dir / "config.json").read_text())["result"]["details"]
    assert details["probe_C"] == 3.0 and details["probe_recipe"]["C"] == 3.0
    assert "C=3.0" in result.reason
    assert "CV log-loss on the fitting images, kept for the refit" in result.reason


def test_two_fine_tunes_are_averaged_without_the_probe_when_the_probe_clearly_hurts(tmp_path, monkeypatch):
    result, _ = _auto(tmp_path, monkeypatch, average_hurts=True)
    assert result.strategy == "ensemble"
    assert "kept the two fine-tuned models averaged, without the probe" in result.reason
    checkpoint = read_checkpoint(result.run_dir)
    assert checkpoint["ensemble"] == {"weights": [0.5, 0.5]}
    assert checkpoint["extra"]["ensemble_members"] == ["fine-tuned network 1", "fine-tuned network 2"]


def test_more_fine_tunes_while_the_time_fits_them_up_to_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(strategies, "MAX_FINETUNES", 3)
    result, _ = _auto(tmp_path, monkeypatch)
    assert result.strategy == "ensemble" and "kept the three fine-tuned models averaged" in result.reason
    assert "a second fine-tune (seed 2" in result.reason and "a third fine-tune (seed 3" in result.reason
    checkpoint = read_checkpoint(result.run_dir)
    assert checkpoint["ensemble"]["weights"] == pytest.approx([1 / 6, 1 / 6, 1 / 6, 0.5])
    assert checkpoint["extra"]["ensemble_members"][:3] == [f"fine-tuned network {i}" for i in (1, 2, 3)]
    details = json.loads((result.run_dir / "config.json").read_text())["result"]["details"]
    assert [more["seed"] for more in details["more_finetunes"]] == [2, 3]
    assert "averaged with 2 more fine-tunes" in details["calibration"]["fitted_on"]


def test_a_second_fine_tune_that_clearly_hurts_is_left_out(tmp_path, monkeypatch):
    scored = []
    real_views = strategies.held_out_views

    def counting_views(ctx, model):
        scored.append(model)
        return real_views(ctx, model)

    # Scored in turn: the first fine-tune, the probe, the second fine-tune; only the comparison after the
    # third (the average with and without the second fine-tune) says "clearly better".
    monkeypatch.setattr(strategies, "held_out_views", counting_views)
    result, _ = _auto(tmp_path, monkeypatch, finetune_clearly=lambda a, b: len(scored) >= 3)
    assert len(scored) == 3
    details = json.loads((result.run_dir / "config.json").read_text())["result"]["details"]
    assert details["more_finetunes"][0]["kept"] is False
    assert "a second fine-tune (seed 2) clearly hurt" in result.reason and "left out" in result.reason
    assert read_checkpoint(result.run_dir)["ensemble"] == {"weights": [0.5, 0.5]}
    assert "second fine-tune" not in details["calibration"]["fitted_on"]


def test_auto_keeps_the_fine_tune_alone_when_the_average_clearly_hurts_or_when_asked(tmp_path, monkeypatch):
    monkeypatch.setattr(strategies, "MAX_FINETUNES", 1)
    hurt, _ = _auto(tmp_path / "hurt", monkeypatch, average_hurts=True)
    assert hurt.strategy == "finetune" and "the average clearly hurt" in hurt.reason
    assert "ensemble" not in read_checkpoint(hurt.run_dir)
    alone, _ = _auto(tmp_path / "alone", monkeypatch, ensemble=False)
    assert alone.strategy == "finetune" and "kept the fine-tuned model" in alone.reason
    assert "ensemble" not in read_checkpoint(alone.run_dir)
    assert "ensemble" not in json.loads((alone.run_dir / "config.json").read_text())["result"]["details"]


def test_a_damaged_ensemble_record_is_refused_before_any_network_is_built(tmp_path):
    from studio.errors import StudioError
    from studio.predict.checkpoint import make_checkpoint

    member = timm.create_model(TINY_BACKBONE, pretrained=False, num_classes=2)
    checkpoint = make_checkpoint(ProbabilityAverage([member, member], [1, 1]), backbone=TINY_BACKBONE,
                                 class_names=["a", "b"], preprocessing={"image_size": 64}, strategy="auto")
    assert build_model(checkpoint).model.weights == [0.5, 0.5]
    for damaged in ({"weights": [1.0] * 10_000}, {"weights": [1.0, -1.0]}, {"weights": "many"}, ["x"]):
        with pytest.raises(StudioError, match="ensemble record is damaged"):
            build_model({**checkpoint, "ensemble": damaged})


def test_another_fine_tune_may_be_shorter_than_the_first_to_fit_the_time_left():
    # 20 epochs of 5 s each were the first fine-tune; the margin asks for 5.5 s an epoch.
    assert strategies.another_finetune_epochs(200.0, 5.0, 20) == 20  # never longer than the first
    assert strategies.another_finetune_epochs(100.0, 5.0, 20) == 18  # what fits
    assert strategies.another_finetune_epochs(67.0, 5.0, 20) == 12  # 60% of the first's: still worth it
    assert strategies.another_finetune_epochs(60.0, 5.0, 20) == 0  # 10 epochs: too short, none
    assert strategies.another_finetune_epochs(1e9, 5.0, 2) == 2
    assert strategies.another_finetune_epochs(5.0, 5.0, 2) == 0
