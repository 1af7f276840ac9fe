import pytest
import torch

from studio.augment import mix_batch, soft_targets
from studio.errors import StudioError


def constant_batch(n: int, size: int = 16) -> torch.Tensor:
    """Image i is filled with the value i, so every pixel tells which image it came from."""
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, size, size).clone()


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_soft_targets_smoothing():
    t = soft_targets(torch.tensor([0, 2]), 4, smoothing=0.2)
    assert torch.allclose(t.sum(1), torch.ones(2))
    assert torch.isclose(t[0, 0], torch.tensor(0.85)) and torch.isclose(t[0, 1], torch.tensor(0.05))


@pytest.mark.parametrize("seed", range(5))
def test_cutmix_label_weights_match_pasted_area(seed):
    images, targets = constant_batch(4), torch.arange(4)
    mixed, soft = mix_batch(images, targets, 4, cutmix_alpha=1.0, prob=1.0, generator=gen(seed))
    assert torch.allclose(soft.sum(1), torch.ones(4))
    for i in range(4):
        partner = (i - 1) % 4  # each image is paired with its neighbour
        own = (mixed[i] == i).float().mean()
        pasted = (mixed[i] == partner).float().mean()
        assert torch.isclose(own + pasted, torch.tensor(1.0))
        assert torch.isclose(soft[i, i], own, atol=1e-6) and torch.isclose(
            soft[i, partner], pasted, atol=1e-6
        )


def test_cutmix_changes_pixels_for_some_seed():
    images = constant_batch(4)
    changed = [
        not torch.equal(mix_batch(images, torch.arange(4), 4, cutmix_alpha=1.0, generator=gen(s))[0], images)
        for s in range(5)
    ]
    assert any(changed)


@pytest.mark.parametrize("seed", range(3))
def test_mixup_blends_pixels_with_label_weights(seed):
    images, targets = constant_batch(3), torch.tensor([0, 1, 2])  # odd batch size
    mixed, soft = mix_batch(images, targets, 3, mixup_alpha=1.0, prob=1.0, generator=gen(seed))
    lam = soft[0, 0]
    assert 0.0 < lam < 1.0
    for i in range(3):
        partner = (i - 1) % 3
        expected = lam * i + (1 - lam) * partner
        assert torch.allclose(mixed[i], torch.full_like(mixed[i], float(expected)), atol=1e-5)
    assert torch.allclose(soft.sum(1), torch.ones(3))


def test_inputs_untouched_and_seed_reproducible():
    images = torch.rand(6, 3, 8, 8)
    before = images.clone()
    a = mix_batch(images, torch.arange(6) % 3, 3, 1.0, 1.0, 1.0, gen(7), smoothing=0.1)
    b = mix_batch(images, torch.arange(6) % 3, 3, 1.0, 1.0, 1.0, gen(7), smoothing=0.1)
    assert torch.equal(images, before)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.allclose(a[1].sum(1), torch.ones(6))


def test_both_enabled_uses_both_kinds():
    images = torch.rand(4, 3, 16, 16)
    kinds = set()
    for seed in range(20):
        mixed, _ = mix_batch(images, torch.arange(4), 4, 1.0, 1.0, 1.0, gen(seed))
        unchanged_fraction = (mixed == images).float().mean().item()
        kinds.add("cutmix" if unchanged_fraction > 0.01 else "mixup")
    assert kinds == {"cutmix", "mixup"}


def test_single_image_off_and_prob_zero_leave_images_unchanged():
    one = torch.rand(1, 3, 8, 8)
    mixed, soft = mix_batch(one, torch.tensor([1]), 3, 1.0, 1.0, 1.0, gen(0), smoothing=0.3)
    assert torch.equal(mixed, one) and torch.allclose(soft, soft_targets(torch.tensor([1]), 3, 0.3))
    batch = torch.rand(4, 3, 8, 8)
    for kwargs in ({"cutmix_alpha": 0.0, "mixup_alpha": 0.0}, {"cutmix_alpha": 1.0, "prob": 0.0}):
        mixed, soft = mix_batch(batch, torch.arange(4), 4, generator=gen(0), **kwargs)
        assert torch.equal(mixed, batch) and torch.equal(soft, torch.eye(4))


def test_bad_settings_raise_studio_error():
    batch = torch.rand(2, 3, 8, 8)
    with pytest.raises(StudioError, match="cutmix alpha"):
        mix_batch(batch, torch.arange(2), 2, cutmix_alpha=-1.0)
    with pytest.raises(StudioError, match="probability"):
        mix_batch(batch, torch.arange(2), 2, mixup_alpha=1.0, prob=2.0)
    with pytest.raises(StudioError, match="smoothing"):
        mix_batch(batch, torch.arange(2), 2, smoothing=1.0)
