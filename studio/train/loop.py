"""The torch training loop shared by every fine-tuning strategy: one call trains one stage.

Per step: cancel check, optional CutMix/MixUp, autocast on CUDA, class-weighted smoothed loss, NaN
check, AdamW step, warmup+cosine schedule, optional weight average (EMA); per epoch: validation (of the
average when there is one, for the charts), metrics event, the checkpoint: by default each epoch's
replaces the last (the whole schedule runs, the last epoch is kept: nothing is chosen on validation);
with `patience`, the best on validation is kept and early stopping counts from the stage's own best.
On a GPU out-of-memory error the stage restarts once with half the batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from timm.utils import ModelEmaV3

from studio.augment.mix import mix_batch, soft_targets
from studio.augment.previews import describe
from studio.augment.project_settings import augment_from_setting
from studio.augment.transforms import build_train_transform
from studio.errors import StudioError
from studio.predict.checkpoint import save_checkpoint
from studio.predict.device import autocast, is_oom, validation_dtype
from studio.predict.inference import IDENTITY, InferenceRunner
from studio.train.context import Best, RunContext
from studio.train.data import AugmentedImages, class_weights
from studio.train.events import Epoch, Step
from studio.train.schedule import set_total_steps, still_warming_up, warmup_cosine


@dataclass
class Stage:
    """One stage of training: which parameter groups learn, at which rates, for how many epochs."""

    name: str
    epochs: int
    groups: list[dict]  # AdamW param groups: {"params": [...], "lr": float}
    warmup_epochs: float = 1.0
    # Called once after the first epoch, when the warmup spans it, with that epoch's measured seconds
    # (training + validation); returns the stage's new epoch count (stage.epochs is updated).
    replan: Callable[[float], int] | None = None
    # Train on more images part-way through (auto: the held-out part of the training split joins it).
    widen: Widen | None = None


@dataclass
class Widen:
    """After epoch `after_epoch` (scored on the held-out images) `check()` decides: False ends the stage
    ("stopped"); True goes on training on `ctx`'s images, which include the held-out ones, to the end
    of the stage. From then on nothing is left to validate on: each epoch's weights (the average when
    there is one) are saved as the run's checkpoint, the last one kept. Early stopping is off: the
    schedule runs to its end, its length planned for both parts from the start."""

    after_epoch: int
    ctx: RunContext
    check: Callable[[], bool]


@dataclass
class StageResult:
    epochs_run: int
    status: str  # "done" | "early-stopped" | "cancelled" | "stopped" (a Widen check said no)


def set_trainable(model: torch.nn.Module, groups: list[dict]) -> None:
    """Only the parameters in the optimizer groups take gradients; the rest stay frozen."""
    trainable_ids = {id(p) for g in groups for p in g["params"]}
    for param in model.parameters():
        param.requires_grad_(id(param) in trainable_ids)


def set_train_mode(model: torch.nn.Module, freeze_bn: bool) -> None:
    """Train mode, with BatchNorm layers kept in eval mode (fixed statistics) when freeze_bn, and
    always in frozen parts of the model (frozen layers must not drift under a trained head)."""
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            frozen = not any(p.requires_grad for p in module.parameters(recurse=False))
            if freeze_bn or frozen:
                module.eval()


def _soft_cross_entropy(
    logits: torch.Tensor, soft: torch.Tensor, weights: torch.Tensor | None
) -> torch.Tensor:
    """Cross-entropy with soft targets; class weights scale each sample by its target's weight."""
    per_sample = -(soft * F.log_softmax(logits.float(), dim=1)).sum(dim=1)
    if weights is None:
        return per_sample.mean()
    sample_weight = soft @ weights
    return (per_sample * sample_weight).sum() / sample_weight.sum()


class Trainer:
    """Trains `model` through one or more stages, keeping its checkpoint in the run (the last epoch; with
    patience, the best on validation)."""

    def __init__(self, ctx: RunContext, model: torch.nn.Module, strategy: str, *,
                 seed: int | None = None) -> None:
        self.ctx = ctx
        # The seed of batch order, augmentation and mixing (the run's unless another is given: auto's
        # further fine-tunes must see the images in another order to err differently).
        self.seed = ctx.config.seed if seed is None else seed
        self.data_ctx = ctx  # whose training images the loader draws (a Widen switches it)
        self.model = model.to(ctx.device, memory_format=torch.channels_last)
        self.strategy = strategy
        self.batch_size = ctx.resolved.batch_size
        self.epochs_run = 0
        self.oom_retried = False
        self.patience = ctx.resolved.patience
        config = ctx.config
        self.augment = augment_from_setting(config.augment)
        self.cutmix = config.cutmix or self.augment.cutmix
        self.mixup = config.mixup or self.augment.mixup
        ctx.events.log(
            f"Augmentation: {describe(replace(self.augment, cutmix=self.cutmix, mixup=self.mixup))}."
        )
        balance = ctx.resolved.balance
        self.loss_weights = (
            class_weights(ctx.snapshot.class_counts).to(ctx.device) if balance == "weights" else None
        )
        self.generator = torch.Generator().manual_seed(self.seed)
        # Per-epoch validation ranks this run's epochs only (bf16 where the CPU runs it natively, in
        # torch: the weights change every epoch); the reported numbers come from the float32 evaluation.
        self.runner = InferenceRunner(self.model, ctx.preprocessing, ctx.device, validation_dtype(ctx.device),
                                      batch_size=64, runtime="torch")
        self.ema: ModelEmaV3 | None = None

    @property
    def evaluated_model(self) -> torch.nn.Module:
        """The weights validation scores and checkpoints keep: the moving average when EMA is on."""
        return self.ema.module if self.ema is not None else self.model

    # ---- data -------------------------------------------------------------------------------------
    def _loader(self, epoch_seed: int, ctx: RunContext | None = None) -> torch.utils.data.DataLoader:
        ctx = ctx or self.data_ctx
        prep = ctx.preprocessing
        transform = build_train_transform(self.augment, prep["image_size"], prep["mean"], prep["std"],
                                          interpolation=prep["interpolation"], seed=epoch_seed)
        targets = ctx.snapshot.train["target"].tolist()
        dataset = AugmentedImages(ctx.train_images, targets, transform)
        generator = torch.Generator().manual_seed(epoch_seed)
        sampler = None
        if ctx.resolved.balance == "sampler":
            weights = class_weights(ctx.snapshot.class_counts)[torch.tensor(targets)]
            sampler = torch.utils.data.WeightedRandomSampler(weights, len(targets), generator=generator)
        sampler = shard_sampler(ctx.world, dataset, sampler, epoch_seed)
        per_rank = len(sampler) if sampler is not None else len(dataset)
        return torch.utils.data.DataLoader(
            dataset, batch_size=self.batch_size, shuffle=sampler is None, sampler=sampler,
            generator=generator, drop_last=per_rank > self.batch_size,
            # In-memory images make per-item work tiny: worker processes would cost more than they save.
            num_workers=0 if ctx.train_images.keep else 2,
            pin_memory=ctx.device.type == "cuda",
        )

    # ---- validation -------------------------------------------------------------------------------
    def validate(self) -> tuple[float, float]:
        """(accuracy, mean cross-entropy) on the validation split, identity view."""
        world = self.ctx.world
        shard = world.shard(len(self.ctx.val_crops))  # each rank scores its share; the sums are all-reduced
        crops = self.ctx.val_crops[shard]
        targets = torch.tensor(self.ctx.snapshot.val["target"].tolist()[shard])
        self.runner.model = self.evaluated_model
        self.runner.prepare()
        logits = []
        for start in range(0, len(crops), self.runner.batch_size):
            batch = crops[start:start + self.runner.batch_size][:, None]
            logits.append(self.runner.forward_crops(batch, (IDENTITY,), [IDENTITY.zoom])[:, 0])
        out = torch.from_numpy(np.concatenate(logits)) if logits else torch.zeros(0, self.ctx.num_classes)
        loss_sum, correct, n = world.sum(
            [
                F.cross_entropy(out, targets, reduction="sum").item() if len(out) else 0.0,
                float((out.argmax(1) == targets).sum()),
                float(len(targets)),
            ]
        )
        return correct / n, loss_sum / n

    # ---- training ---------------------------------------------------------------------------------
    def run(self, stage: Stage) -> StageResult:
        """Train one stage; on GPU out-of-memory, retry it once from its start with half the batch."""
        start_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        while True:
            try:
                return self._run(stage)
            except (torch.cuda.OutOfMemoryError, RuntimeError) as error:
                if not is_oom(error):
                    raise
                if self.oom_retried or self.batch_size < 2:
                    raise StudioError(
                        f"Out of memory even with batch size {self.batch_size}: choose a smaller "
                        "--image-size or backbone, close other programs using the GPU, or use --device cpu."
                    ) from error
                self.oom_retried = True
                self.batch_size = max(1, self.batch_size // 2)
                self.model.load_state_dict(start_state)
                if self.ctx.device.type == "cuda":
                    torch.cuda.empty_cache()
                self.ctx.events.log(
                    f"Out of memory: retrying stage '{stage.name}' with batch size {self.batch_size}."
                )

    def _run(self, stage: Stage) -> StageResult:
        ctx, events = self.ctx, self.ctx.events
        events.stage(stage.name)
        set_trainable(self.model, stage.groups)
        train_model = ctx.world.wrap(self.model)  # DDP on several ranks (after set_trainable: it syncs those)
        optimizer = make_adamw(_split_decay(stage.groups, ctx.config.weight_decay), ctx.device)
        self.data_ctx = ctx
        steps_per_epoch = max(1, len(self._loader(0)))
        widen = stage.widen
        wide_steps = max(1, len(self._loader(0, widen.ctx))) if widen is not None else steps_per_epoch

        def planned_steps() -> int:
            if widen is None:
                return steps_per_epoch * stage.epochs
            narrow = min(widen.after_epoch, stage.epochs)
            return steps_per_epoch * narrow + wide_steps * (stage.epochs - narrow)

        total_steps = planned_steps()
        schedule = warmup_cosine(optimizer, total_steps, round(stage.warmup_epochs * steps_per_epoch))
        scaler = torch.amp.GradScaler("cuda", enabled=ctx.training_dtype == torch.float16)
        decay = ctx.resolved.ema_decay
        # A fresh average per stage, warmed up (timm's schedule) so early steps are not frozen in.
        self.ema = ModelEmaV3(self.model, decay=decay, use_warmup=True) if decay > 0 else None
        patience, stale, step = self.patience, 0, 0
        stage_best = Best()
        seconds_per_step = None
        val_seconds = 0.0
        epoch = 0
        while epoch < stage.epochs:  # not range(): a re-plan after the first epoch changes stage.epochs
            epoch += 1
            loader = self._loader(self.seed * 1000 + self.epochs_run + 1)
            set_train_mode(self.model, ctx.resolved.freeze_bn)
            losses, correct, seen, epoch_start = [], 0, 0, time.perf_counter()
            for images, targets in loader:
                if ctx.world.any(events.cancelled):
                    events.log(f"Cancelled during stage '{stage.name}', epoch {epoch}.")
                    return StageResult(self.epochs_run, "cancelled")
                step_start = time.perf_counter()
                images = images.to(ctx.device, non_blocking=True).contiguous(
                    memory_format=torch.channels_last
                )
                targets = targets.to(ctx.device)
                if self.cutmix > 0 or self.mixup > 0:
                    images, soft = mix_batch(images, targets, ctx.num_classes, self.cutmix, self.mixup,
                                             self.augment.mix_prob, self.generator,
                                             smoothing=ctx.resolved.label_smoothing)
                else:
                    soft = soft_targets(targets, ctx.num_classes, ctx.resolved.label_smoothing)
                with autocast(ctx.device, ctx.training_dtype):
                    logits = train_model(images)
                loss = _soft_cross_entropy(logits, soft.to(ctx.device), self.loss_weights)
                if not torch.isfinite(loss):
                    raise StudioError(
                        f"The training loss became {loss.item()} "
                        f"(stage '{stage.name}', epoch {epoch}, step {step + 1}): "
                        f"the learning rate is probably too high. Training stopped; the checkpoint "
                        f"so far (if any) was kept. Lower --lr and train again."
                    )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                schedule.step()
                step += 1
                if self.ema is not None:
                    self.ema.update(self.model, step=step)
                losses.append(loss.item())
                correct += int((logits.argmax(1) == targets).sum())
                seen += len(targets)
                took = time.perf_counter() - step_start
                seconds_per_step = took if seconds_per_step is None else 0.8 * seconds_per_step + 0.2 * took
                if step % ctx.config.log_every == 0:
                    events.emit(
                        Step(
                            stage=stage.name,
                            epoch=epoch,
                            step=step,
                            steps_per_epoch=steps_per_epoch,
                            loss=float(np.mean(losses[-ctx.config.log_every :])),
                            lr=optimizer.param_groups[-1]["lr"],
                            images_per_s=len(targets) / took,
                            eta_s=(total_steps - step) * seconds_per_step
                            + (stage.epochs - epoch + 1) * val_seconds,
                        )
                    )
            train_seconds = time.perf_counter() - epoch_start
            loss_sum, batches, correct, seen = ctx.world.sum(
                [float(np.sum(losses)), len(losses), correct, seen]
            )
            widened = self.data_ctx is not ctx
            val_start = time.perf_counter()
            val_accuracy, val_loss = (None, None) if widened else self.validate()
            val_seconds = time.perf_counter() - val_start
            self.epochs_run += 1
            if epoch == 1 and stage.replan is not None and still_warming_up(schedule, step):
                stage.epochs = max(1, stage.replan(train_seconds + val_seconds))
                total_steps = planned_steps()
                set_total_steps(schedule, total_steps)
            events.emit(Epoch(
                stage=stage.name, epoch=epoch,
                train_loss=loss_sum / batches if batches else float("nan"),
                train_accuracy=correct / max(1, seen), val_loss=val_loss, val_accuracy=val_accuracy,
                lr=optimizer.param_groups[-1]["lr"], images_per_s=seen / max(train_seconds, 1e-9),
                eta_s=(stage.epochs - epoch) * (train_seconds + val_seconds),
            ))
            if widened:
                if ctx.world.is_main:
                    save_checkpoint(ctx.checkpoint(self.evaluated_model, self.strategy),
                                    ctx.folder.checkpoint_path)
                continue
            if widen is not None:
                if epoch >= min(widen.after_epoch, stage.epochs):  # the check (a re-plan may move it)
                    if not widen.check():
                        return StageResult(self.epochs_run, "stopped")
                    if epoch == stage.epochs:  # no epoch left to widen into: keep these weights
                        if ctx.world.is_main:
                            save_checkpoint(ctx.checkpoint(self.evaluated_model, self.strategy),
                                            ctx.folder.checkpoint_path)
                    else:
                        self.data_ctx = widen.ctx
                        events.log(f"Stage '{stage.name}': from epoch {epoch + 1} on, training on all "
                                   f"{len(widen.ctx.snapshot.train)} training images (the held-out ones "
                                   "too).")
                continue
            def make() -> dict:
                return ctx.checkpoint(self.evaluated_model, self.strategy)

            if not patience:  # the whole schedule, the last epoch kept: no choice made on validation
                ctx.keep(val_accuracy, val_loss, make, stage=stage.name, epoch=epoch, strategy=self.strategy)
                continue
            ctx.offer(val_accuracy, val_loss, make, stage=stage.name, epoch=epoch, strategy=self.strategy)
            # Patience counts from this stage's own best: a stage that starts below an earlier one (a
            # fine-tune after a strong probe) is still stopped only when it stops improving itself.
            improved = stage_best.improves(val_accuracy, val_loss)
            if improved:
                stage_best = Best(val_accuracy, val_loss)
            stale = 0 if improved else stale + 1
            if stale >= patience and epoch < stage.epochs:
                events.log(f"Early stopping in stage '{stage.name}' after epoch {epoch}: "
                           f"no better validation result for {patience} epochs.")
                return StageResult(self.epochs_run, "early-stopped")
        return StageResult(self.epochs_run, "done")


def shard_sampler(world, dataset, sampler, seed: int):
    """The sampler of this rank: the DistributedSampler's share (shuffled with the same seed on every
    rank), or this rank's share of a weighted draw; `sampler` unchanged on one process."""
    if not world.distributed:
        return sampler
    if sampler is None:
        return torch.utils.data.DistributedSampler(dataset, num_replicas=world.size, rank=world.rank,
                                                   shuffle=True, seed=seed)
    drawn = list(sampler)  # the same draw on every rank (same generator seed)
    drawn = drawn[:len(drawn) - len(drawn) % world.size] or drawn[:world.size]
    return drawn[world.shard(len(drawn))]


def make_adamw(groups: list[dict], device: torch.device) -> torch.optim.AdamW:
    """AdamW, fused into one kernel where torch has it for the device (a few % of a CPU step)."""
    if device.type in ("cpu", "cuda"):
        try:
            return torch.optim.AdamW(groups, fused=True)
        except (RuntimeError, TypeError, ValueError):  # older torch, or parameters it cannot fuse
            pass
    return torch.optim.AdamW(groups)


def _split_decay(groups: list[dict], weight_decay: float) -> list[dict]:
    """No weight decay on biases and norm parameters (1-D tensors), as timm does."""
    out = []
    for group in groups:
        decay = [p for p in group["params"] if p.ndim > 1]
        no_decay = [p for p in group["params"] if p.ndim <= 1]
        for params, wd in ((no_decay, 0.0), (decay, weight_decay)):
            if params:
                out.append({**group, "params": params, "weight_decay": wd})
    return out


def seconds_per_image(trainer: Trainer, stage: Stage, batches: int = 2) -> float:
    """Measured training cost per image (for auto's time budget): a few real steps, then undone."""
    state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    set_trainable(trainer.model, stage.groups)  # frozen layers need no backward pass: much cheaper steps
    optimizer = make_adamw(_split_decay(stage.groups, 0.0), trainer.ctx.device)
    set_train_mode(trainer.model, trainer.ctx.resolved.freeze_bn)
    loader = iter(trainer._loader(12345))
    timings = []
    for _ in range(batches + 1):
        try:
            images, targets = next(loader)
        except StopIteration:
            break
        start = time.perf_counter()
        images = images.to(trainer.ctx.device).contiguous(memory_format=torch.channels_last)
        with autocast(trainer.ctx.device, trainer.ctx.training_dtype):
            loss = F.cross_entropy(trainer.model(images).float(), targets.to(trainer.ctx.device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        timings.append((time.perf_counter() - start) / len(targets))
    trainer.model.load_state_dict(state)
    usable = timings[1:] or timings  # the first step pays one-off allocation costs
    return float(np.median(usable)) if usable else math.inf
