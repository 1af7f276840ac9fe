"""Bad input gets a StudioError that says what to do."""

from __future__ import annotations

import json

import pytest
from train_helpers import make_project, tiny_config

from studio.errors import StudioError
from studio.train import TrainConfig, train
from studio.train.events import Log


def test_unknown_backbone_suggests_close_names(project):
    with pytest.raises(StudioError, match="Did you mean.*efficientnet"):
        train(project, tiny_config(backbone="efficientnet_bo"))


def test_fewer_than_two_trained_classes(tmp_path):
    project = make_project(tmp_path, classes=("only",), per_class=4)
    with pytest.raises(StudioError, match="at least two classes"):
        train(project, tiny_config())
    assert not project.runs_dir.exists() or not any(project.runs_dir.iterdir())


def test_small_classes_are_noted_in_the_run_log(tmp_path):
    project = make_project(tmp_path, classes=("cat", "dog"), per_class=4)
    logs = []
    train(project, tiny_config(strategy="linear"),
          callback=lambda e: logs.append(e.message) if isinstance(e, Log) else None)
    assert "Note: class 'cat' has only 4 labeled images: aim for at least 10" in "\n".join(logs)
    assert any(m.startswith("Note: validation has only") for m in logs)



def test_images_labeled_after_an_unlabeled_import_are_split_and_trained_on(project, tmp_path):
    """Imported without labels, they have no split; labeled later (Label tab), training gives them one."""
    from helpers_images import make_image

    before = project.dataset(labeled_only=True)
    added = []
    for number in range(6):
        path = tmp_path / f"new-{number}.png"
        make_image(48, seed=100 + number).save(path)
        added.append(project.add_image_file(path)[0])
    project.set_labels([(image_id, "cat" if i % 2 else "dog") for i, image_id in enumerate(added)])
    assert project.dataset(labeled_only=True).set_index("image_id").loc[added, "split"].isna().all()
    logs = []
    result = train(project, tiny_config(strategy="linear"),
                   callback=lambda e: logs.append(e.message) if isinstance(e, Log) else None)
    splits = project.dataset(labeled_only=True).set_index("image_id")["split"]
    assert splits.loc[added].isin(["train", "val"]).all()  # (all train here: val already holds 34%)
    assert (splits.loc[before["image_id"]] == before.set_index("image_id")["split"]).all()  # none moved
    record = json.loads((result.run_dir / "config.json").read_text())
    assert record["n_train"] + record["n_val"] == len(before) + len(added)
    assert any("6 labeled image(s) had no split" in m for m in logs)
    assert not any("are not used" in m for m in logs)


def test_a_probe_too_small_to_fold_says_why_it_has_no_confidence_threshold(tmp_path):
    project = make_project(tmp_path, classes=("cat", "dog", "owl"), per_class=2)  # one training image each
    logs = []
    # pretrained weights: the novelty test (the rule left without a threshold) needs them
    train(project, tiny_config(strategy="linear", backbone="tf_efficientnet_lite0", pretrained=True),
          callback=lambda e: logs.append(e.message) if isinstance(e, Log) else None)
    text = "\n".join(logs)
    assert "No confidence threshold: too few training images per class" in text
    assert "logistic-regression probe runs do" not in text  # it is one: the old reason misled
    assert "from their 2nd nearest of 3 training images" in text


def test_empty_validation_split(project):
    ids = project.dataset()["image_id"].tolist()
    project.set_split(ids, "train")
    with pytest.raises(StudioError, match="validation split is empty"):
        train(project, tiny_config())


def test_missing_weights_file(project, tmp_path):
    with pytest.raises(StudioError, match="does not exist"):
        train(project, tiny_config(pretrained=True, weights=str(tmp_path / "nope.pth")))


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"strategy": "best"}, "Unknown strategy"),
        ({"head": "forest"}, "Unknown head"),
        ({"epochs": 0}, r"Epochs \(--epochs\) must be a whole number"),
        ({"batch_size": 0}, r"Batch size \(--batch-size\)"),
        ({"lr": -1.0}, r"Learning rate \(--lr\) must be a positive number"),
        ({"augment": "wild"}, "Unknown augment"),
        ({"device": "tpu"}, "Unknown device"),
        ({"image_size": 8}, "Image size"),
        ({"epochs": 100_000}, "the limit is 1000"),
        ({"lr": 50.0}, r"Learning rate \(--lr\) 50 would make training diverge"),
        ({"backbone_lr": 3.0}, "Backbone learning rate"),
        ({"batch_size": 100_000}, "above the limit of 4096"),
        ({"warmup_epochs": -1.0}, "warmup_epochs"),
        ({"time_budget_s": 1e9}, "more than a week"),
        ({"seed": -1}, r"seed \(--seed\) must be a whole number from 0"),
    ],
)
def test_bad_settings(settings, message):
    with pytest.raises(StudioError, match=message):
        TrainConfig(**settings)


def test_config_round_trip_and_unknown_keys():
    config = tiny_config(strategy="two-stage", layer_decay=0.8)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(StudioError, match="Unknown training setting"):
        TrainConfig.from_dict({"epoch": 3})


def test_batch_beyond_the_memory_at_hand_is_refused_with_an_estimate(monkeypatch):
    from studio.train import limits

    monkeypatch.setattr(limits, "memory_at_hand", lambda device: (8 * 2**30, "RAM"))
    with pytest.raises(StudioError, match=r"needs about \d+ GiB .* 8 GiB of RAM: use a batch of at most \d+"):
        TrainConfig(strategy="finetune", batch_size=512, image_size=512)
    TrainConfig(strategy="finetune", batch_size=16, image_size=224)  # fits: accepted
    TrainConfig(strategy="linear", batch_size=512, image_size=512)  # no backward pass through the backbone
