"""Train tab: choose backbone, strategy and hyperparameters, start and cancel runs, watch live curves,
see the queue and past runs, and compare runs on one chart.

Training runs in the trainer service; this tab only submits jobs and polls their event history with a
gr.Timer, so the UI never blocks. Reopening the page (or the project) finds the project's running or
latest job and redraws its whole history. API: /train, /train_status, /cancel (see `train_api`).
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from studio.app.jobs import job_status, read_job
from studio.augment import PRESET_NAMES, augment_from_setting, describe, load_project_augment
from studio.augment.project_settings import PROJECT_CHOICE as PROJECT_AUGMENT
from studio.augment.project_settings import resolve_augment_choice
from studio.errors import StudioError
from studio.models.registry import BACKBONES, DEFAULT_BACKBONE, check_backbone
from studio.service.runs import run_settings
from studio.sharing.caller import caller_name
from studio.sharing.quotas import JobQuota
from studio.train.config import CPU_TIME_BUDGET_S, GPU_TIME_BUDGET_S, STRATEGIES, TrainConfig
from studio.train.distributed import DISTRIBUTED_STRATEGIES, check_nproc, visible_gpus
from studio.ui import charts
from studio.ui.access import requires
from studio.ui.context import AppContext, ProjectBinding
from studio.ui.feedback import api_errors, user_errors

POLL_SECONDS = 2.0
TIME_BUDGET_INFO = (f"Auto's whole run. 0 = automatic ({CPU_TIME_BUDGET_S:.0f} s on a CPU, "
                    f"{GPU_TIME_BUDGET_S:.0f} s on a GPU); more time, more fine-tuning.")

STRATEGY_HELP = {
    "auto": (
        "Linear probe first, then a fine-tune of the upper layers while time allows (a second one too on "
        "small sets, when it fits); keeps the fine-tunes averaged with the probe (or the probe alone when "
        "clearly better). A good first choice."
    ),
    "linear": (
        "Backbone frozen, only a classifier on its features. Fastest (seconds); strong with very few images."
    ),
    "finetune": (
        "Trains every layer, the backbone at a lower rate. "
        "Usually the most accurate with a few hundred images."
    ),
    "two-stage": (
        "Head first, then the top blocks at a low rate. A safe middle ground between linear and finetune."
    ),
    "gradual": "Unfreezes one more block group per stage, top down. Steady on small or unusual images.",
    "scratch": "Random weights, no pretraining. A baseline only: expect much lower accuracy.",
}

JOB_COLUMNS = ["job", "kind", "state", "progress", "submitted", "run"]
RUN_COLUMNS = ["run", "status", "strategy", "backbone", "epochs", "val acc", "model"]


@requires("viewer")
@user_errors
def backbone_note(name: str) -> str:
    info = BACKBONES.get((name or "").strip())
    if info is None:
        return ("Custom timm model: any name from `timm.list_models()`. Pretrained weights are downloaded "
                "from the hub, so the first run needs network access.")
    return (
        f"{info.note} ({info.params_m:g} M parameters, {info.input_size} px, "
        f"ImageNet top-1 {info.imagenet_top1:g} %)"
    )


@requires("viewer")
@user_errors
def strategy_note(name: str) -> str:
    return STRATEGY_HELP.get(name, "")


@requires("viewer")
@user_errors
def augment_note(root: str, choice: str, load: Callable[[str], Any] = load_project_augment) -> str:
    """What the augmentation choice will do, in words (the Augment tab's saved settings when chosen).
    `load(root)` reads the project's saved settings (the tab passes one that checks the folder first)."""
    if choice and choice != PROJECT_AUGMENT:
        return f"Preset {choice}: {describe(augment_from_setting(choice))}."
    if not root:
        return "Open a project: its Augment tab settings (default: the light preset) are used."
    try:
        return f"Saved in the Augment tab: {describe(load(root))}."
    except StudioError as error:
        return f"⚠ {error}"


def progress_html(status: dict[str, Any] | None) -> str:
    """A progress bar with the job's state, stage, epoch and time left."""
    if not status:
        return ("<div class='train-progress'><div class='train-progress-text'>No training job yet: "
                "set the options and press <b>Start training</b>.</div></div>")
    fraction = max(0.0, min(1.0, float(status.get("progress") or 0.0)))
    state = status["state"]
    color = {"failed": "#dc2626", "cancelled": "#9ca3af", "done": "#16a34a"}.get(state, "#4f46e5")
    parts = [f"<b>{html.escape(state.capitalize())}</b>"]
    if status.get("queue_position"):
        parts.append(f"position {status['queue_position']} in the queue")
    if status.get("stage") and state == "running":
        parts.append(f"stage {html.escape(str(status['stage']))}")
    if status.get("epoch") and state == "running":
        parts.append(f"epoch {status['epoch']}")
    if state == "running":
        parts.append(f"{fraction:.0%} of this stage")
        if status.get("eta_s") is not None:
            parts.append(f"about {format_seconds(status['eta_s'])} left")
    result = status.get("result") or {}
    metrics = status.get("metrics") or {}
    if result.get("val_accuracy") is not None:
        tta = result.get("val_accuracy_tta")
        if result.get("tta") and tta is not None:  # the run predicts with TTA: its number comes first
            parts.append(f"val accuracy {tta:.1%} with TTA, as this run predicts "
                         f"({result['val_accuracy']:.1%} without)")
        else:
            parts.append(f"val accuracy {result['val_accuracy']:.1%}"
                         + (f" ({tta:.1%} with TTA)" if tta is not None else ""))
    elif metrics.get("val_accuracy") is not None:
        parts.append(f"last val accuracy {metrics['val_accuracy']:.1%}")
    if status.get("run_dir"):
        parts.append(f"run {html.escape(Path(status['run_dir']).name)}")
    if status.get("error"):
        parts.append(f"<span style='color:#dc2626'>{html.escape(status['error'])}</span>")
    width = 100 if state in ("done", "failed", "cancelled") else fraction * 100
    return (
        "<div class='train-progress'>"
        f"<div style='background:#e5e7eb;border-radius:6px;height:14px;overflow:hidden'>"
        f"<div style='width:{width:.1f}%;height:100%;background:{color};transition:width .5s'></div></div>"
        f"<div class='train-progress-text' style='margin-top:6px'>{html.escape(status['job_id'])}: "
        f"{' · '.join(parts)}</div></div>"
    )


def format_seconds(seconds: float) -> str:
    seconds = max(0, round(float(seconds)))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def jobs_frame(service: Any, root: str) -> pd.DataFrame:
    """Jobs of this project (queued, running, finished in this session), newest first."""
    rows = []
    for job in service.list_jobs() if service is not None else []:
        if root and job.project and Path(job.project) != Path(root):
            continue
        info = job.to_dict()
        shown = f"{info['progress']:.0%}"
        if info["state"] == "running" and not info["progress"] and job.kind == "train":
            # The engine reports time left per stage, not a fraction of the run: say which stage it is.
            status = job_status(job, job.events(0))
            shown = f"{status['stage'] or 'starting'}: {status['progress']:.0%}"
        rows.append([info["id"], info["kind"], info["state"], shown,
                     time.strftime("%H:%M:%S", time.localtime(info["created"])),
                     Path(info["run_dir"]).name if info.get("run_dir") else ""])
    return pd.DataFrame(rows, columns=JOB_COLUMNS)


def form_values(config: dict[str, Any]) -> dict[str, Any]:
    """The Train form's values for a job's settings (`TrainConfig.to_dict()`; None, automatic, shows as 0)."""
    keys = {name: name for name in ("backbone", "strategy", "epochs", "lr", "batch_size", "image_size")}
    keys["time_budget"] = "time_budget_s"
    values = {}
    for field, key in keys.items():
        value = config.get(key)
        if value is not None:
            values[field] = value
        elif key in config and field not in ("backbone", "strategy"):  # a number left automatic
            values[field] = 0
    return values


def curve_val_name(config: dict[str, Any]) -> str:
    """What a run's validation curve scores: auto never touches the val split while it trains (its curve
    is its held-out training images); the other strategies score the val split each epoch."""
    return "held-out training images" if config.get("strategy", "auto") == "auto" else "validation"


def newest_run_html(run: dict[str, Any]) -> str:
    """The Train tab's line for a finished run of an earlier session (no job of it in this one)."""
    accuracy = run.get("val_accuracy")
    text = (f"No training job since the app started. Newest run <b>{html.escape(run['name'])}</b>: "
            f"{html.escape(str(run['status']))}"
            + ("" if accuracy is None else f" · val accuracy {accuracy:.1%} as it predicts")
            + ". Its curves are below; press <b>Start training</b> for a new run.")
    return f"<div class='train-progress'><div class='train-progress-text'>{text}</div></div>"


def runs_frame(runs: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for run in runs:
        settings, backbone = run_settings(run)
        accuracy = run.get("val_accuracy")  # the reported number (service.runs), not the curve's best
        rows.append([run["name"], run["status"], settings.get("strategy", ""), backbone,
                     run.get("epochs", 0), "" if accuracy is None else f"{accuracy:.1%}",
                     "yes" if run.get("has_model") else "no"])
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def _whole(label: str, value: Any, minimum: int = 1) -> int | None:
    """A whole number from a form field or API argument; None for empty or 0 (automatic)."""
    if value is None or value == "" or value == 0:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise StudioError(f"{label} must be a whole number (or 0 for automatic), got {value!r}.") from None
    if not number.is_integer() or number < minimum:
        raise StudioError(f"{label} must be a whole number of at least {minimum} (or 0 for automatic), "
                          f"got {value!r}.")
    return int(number)


def _positive(label: str, value: Any, example: str = "0.001") -> float | None:
    if value is None or value == "" or value == 0:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number > 0 or number == float("inf"):
        raise StudioError(
            f"{label} must be a positive number such as {example} (or 0 for automatic), got {value!r}."
        )
    return number


def augment_fields(project: Any, choice: str) -> dict[str, Any]:
    """TrainConfig fields for the augmentation choice: a preset, or every strength the Augment tab saved."""
    return {"augment": resolve_augment_choice(choice or PROJECT_AUGMENT, project.root)}


class TrainApi:
    """The tab's calls into the service, shared by the widgets and the /train, /train_status, /cancel API."""

    def __init__(self, context: AppContext) -> None:
        self.context = context
        self.quota = JobQuota()

    @property
    def service(self) -> Any:
        if self.context.service is None:
            raise StudioError("The trainer service is not running; restart the studio.")
        return self.context.service

    def project_augment(self, root: str) -> Any:
        """The project's saved Augment-tab settings, for a folder this app may open (refused otherwise: the
        root comes from the browser, and any caller may send any string)."""
        return load_project_augment(self.context.open_project(root).root)

    def augment_note(self, root: str, choice: str) -> str:
        return augment_note(root, choice, self.project_augment)

    def train_config(self, root: str, backbone: str, strategy: str, epochs: Any, lr: Any, batch_size: Any,
                     image_size: Any, augment: str, pretrained: bool = True,
                     time_budget: Any = None) -> tuple[Path, dict]:
        """Check every setting (StudioError naming the field) and return (project root, config)."""
        project = self.context.open_project(root)
        counts = project.info().get("counts", {})
        labeled = [name for name, splits in counts.items() if sum(splits.values()) > 0]
        if len(labeled) < 2:
            raise StudioError(f"Training needs labeled images in at least two classes; this project has "
                              f"{len(labeled)}. Label more images in the Label tab.")
        if strategy not in STRATEGIES:
            raise StudioError(f"Unknown strategy {strategy!r}. Choose one of: {', '.join(STRATEGIES)}.")
        if augment and augment not in (PROJECT_AUGMENT, *PRESET_NAMES):
            augment = str(self.context.server_path(augment))  # a JSON file: confined like any server path
        fields = augment_fields(project, augment)
        config = TrainConfig(
            strategy=strategy, backbone=check_backbone((backbone or DEFAULT_BACKBONE).strip()),
            pretrained=bool(pretrained), epochs=_whole("Epochs", epochs), lr=_positive("Learning rate", lr),
            batch_size=_whole("Batch size", batch_size), image_size=_whole("Image size", image_size, 32),
            time_budget_s=_positive("Time budget", time_budget, "600 (seconds)"), **fields,
        )
        return project.root, config.to_dict()

    def lr_find_job(self, root: str, *settings: Any) -> Any:
        """Queue the learning-rate sweep with the tab's settings (checked like a training run's)."""
        project_root, config = self.train_config(root, *settings)
        config = {**config, "strategy": "finetune"}

        def run(ctx: Any) -> dict[str, Any]:
            from studio.train.lr_find import lr_find

            settings = TrainConfig.from_dict({**config, "device": ctx.device.type})
            return lr_find(self.context.open_project(project_root), settings)

        return self.service.submit("lr-find", run, config=config, project=str(project_root))

    def train(self, root: str, *settings: Any, processes: Any = 1, time_budget: Any = None) -> str:
        nproc = _whole("Processes", processes, 1) or 1
        project_root, config = self.train_config(root, *settings, time_budget=time_budget)
        check_nproc(nproc, config["strategy"], str(self.service.device.type))  # before queueing, in words
        job = self.quota.admit(self.service, caller_name(), "train",
                               lambda: self.service.submit_train(project_root, config, nproc=nproc))
        return job.id

    def job(self, job_id: str) -> Any:
        return self.service.get(str(job_id or "").strip())

    def queue_position(self, job: Any) -> int | None:
        queued = self.service.queued_jobs()
        return queued.index(job) + 1 if job in queued else None

    def status(self, job_id: str) -> dict[str, Any]:
        job = self.job(job_id)
        return job_status(job, job.events(0), self.queue_position(job))

    def cancel(self, job_id: str) -> str:
        job = self.job(job_id)
        self.service.cancel(job.id)
        job.wait(0.5)  # a queued job is cancelled at once; a running one stops after its batch
        return job.state.value if job.is_finished else "cancelling"

    def latest_train_job(self, root: str) -> str:
        """The project's running training job, else its newest one this session ("" for none)."""
        root_path = self.context.open_project(root).root
        mine = [j for j in self.service.list_jobs("train") if j.project and Path(j.project) == root_path]
        running = [j for j in mine if j.state.value == "running"]
        return (running or mine or [None])[0].id if mine else ""

    def runs(self, root: str) -> list[dict[str, Any]]:
        return self.service.list_runs(self.context.open_project(root).root)

    def curve_rows(self, run_dir: str) -> list[dict[str, Any]]:
        return charts.history_from_events(self.service.run_curves(run_dir).to_dict("records"))

    def register(self) -> None:
        """The scriptable endpoints (gradio_client): /train, /train_status, /cancel."""

        @requires("owner")
        @api_errors
        def train(project: str, backbone: str = DEFAULT_BACKBONE, strategy: str = "auto",
                  epochs: int | None = None, lr: float | None = None, batch_size: int | None = None,
                  image_size: int | None = None, augment: str = PROJECT_AUGMENT, pretrained: bool = True,
                  processes: int = 1, time_budget: float | None = None) -> str:
            """Queue a training run on a project; returns the job id. Empty numbers mean automatic;
            augment is "project" (the Augment tab's settings) or a preset name; processes > 1 trains
            with torchrun on that many GPUs (or CPU processes), strategies finetune and scratch;
            time_budget is the seconds auto may spend (automatic: 270 on CPU, 600 on GPU)."""
            return self.train(project, backbone, strategy, epochs, lr, batch_size, image_size, augment,
                              pretrained, processes=processes, time_budget=time_budget)

        @requires("viewer")
        @api_errors
        def train_status(job_id: str) -> dict:
            """State (queued/running/done/failed/cancelled), progress, eta_s, stage, epoch, last metrics,
            error."""
            return self.status(job_id)

        @requires("owner")
        @api_errors
        def cancel(job_id: str) -> str:
            """Cancel a queued or running job; returns its state (cancelled, cancelling, or how it ended)."""
            return self.cancel(job_id)

        gr.api(train, api_name="train")
        gr.api(train_status, api_name="train_status", queue=False)
        gr.api(cancel, api_name="cancel", queue=False)


def build(context: AppContext, binding: ProjectBinding) -> None:
    api = TrainApi(context)
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            gr.Markdown("### Settings")
            backbone = gr.Dropdown(choices=list(BACKBONES), value=DEFAULT_BACKBONE, allow_custom_value=True,
                                   label="Backbone", info="Pick one, or type any timm model name.")
            backbone_help = gr.Markdown(backbone_note(DEFAULT_BACKBONE), elem_classes="help-text")
            strategy = gr.Radio(choices=list(STRATEGIES), value="auto", label="Strategy")
            strategy_help = gr.Markdown(strategy_note("auto"), elem_classes="help-text")
            with gr.Row():
                epochs = gr.Number(label="Epochs", value=0, precision=0, minimum=0, info="0 = automatic.")
                lr = gr.Number(label="Learning rate", value=0, minimum=0, info="0 = automatic (1e-3).")
            with gr.Row():
                batch_size = gr.Number(label="Batch size", value=0, precision=0, minimum=0,
                                       info="0 = automatic (from the data and device).")
                image_size = gr.Number(label="Image size (px)", value=0, precision=0, minimum=0, maximum=1024,
                                       info="0 = the backbone's own size.")
            time_budget = gr.Number(label="Time budget (s)", value=0, minimum=0,
                                    info=TIME_BUDGET_INFO)
            augment = gr.Dropdown(
                choices=[("The Augment tab's settings", PROJECT_AUGMENT)]
                + [(f"Preset: {p}", p) for p in PRESET_NAMES],
                value=PROJECT_AUGMENT,
                label="Augmentation",
            )
            augment_help = gr.Markdown(elem_classes="help-text")
            gpus = visible_gpus()
            processes = gr.Number(
                label="GPUs",
                value=1,
                precision=0,
                minimum=1,
                maximum=max(1, gpus),
                visible=gpus > 1,
                info=f"{gpus} visible: more than 1 trains with torchrun "
                f"(DistributedDataParallel); strategies {' and '.join(DISTRIBUTED_STRATEGIES)}.",
            )
            with gr.Row():
                start = gr.Button("Start training", variant="primary")
                cancel = gr.Button("Cancel job", variant="stop")
            with gr.Accordion("Learning-rate finder", open=False):
                lr_find_button = gr.Button("Find a learning rate", size="sm")
                lr_find_text = gr.Markdown("A short sweep of rising rates on the training images (nothing is "
                                           "saved); the suggestion goes into **Learning rate**.",
                                           elem_classes="help-text")
                lr_find_plot = gr.Plot(visible=False, show_label=False)
        with gr.Column(scale=5):
            progress = gr.HTML(progress_html(None), elem_id="train-progress")
            curves = gr.Plot(charts.training_curves([]), label="Training curves", show_label=False,
                             elem_id="train-curves")
            log = gr.Textbox(label="Log", lines=3, max_lines=6, interactive=False, autoscroll=True)
    with gr.Row():
        gr.Markdown("### Queue and runs")
        refresh = gr.Button("Refresh", size="sm", scale=0, min_width=100)
    jobs = gr.Dataframe(
        pd.DataFrame(columns=JOB_COLUMNS),
        interactive=False,
        label="Jobs since the app started",
        max_height=220,
    )
    runs = gr.Dataframe(pd.DataFrame(columns=RUN_COLUMNS), interactive=False,
                        label="Run folders of this project (newest first)", max_height=300)
    gr.Markdown("### Compare runs")
    compare = gr.Dropdown(choices=[], multiselect=True, label="Runs to compare",
                          info="Pick two or more runs: their validation curves share one chart.")
    compare_plot = gr.Plot(charts.compare_runs({}), show_label=False)

    watched = gr.State("")  # the job id this browser session is watching
    seen = gr.State(0)  # the last event seq drawn
    timer = gr.Timer(POLL_SECONDS, active=False)
    outputs = [seen, progress, curves, log, jobs, runs, compare, timer]

    def tables(root: str, with_choices: bool, run_list: list[dict] | None = None) -> dict:
        run_list = run_list if run_list is not None else api.runs(root) if root else []
        shown = {jobs: jobs_frame(context.service, root), runs: runs_frame(run_list)}
        if with_choices:  # updating the choices while a job runs would drop the user's selection every tick
            choices = [(r["name"], r["run_dir"]) for r in run_list if r.get("epochs")]
            shown[compare] = gr.Dropdown(choices=choices)
        return shown

    def show_newest_run(root: str) -> dict:
        """No job of this project since the app started: the newest run folder's curves and result."""
        run_list = api.runs(root) if root else []
        newest = next((r for r in run_list if r.get("epochs")), None)
        if newest is None:
            return {seen: 0, progress: progress_html(None), curves: charts.training_curves([]), log: "",
                    **tables(root, True, run_list), timer: gr.Timer(active=False)}
        return {seen: 0, progress: newest_run_html(newest),
                curves: charts.training_curves(api.curve_rows(newest["run_dir"]),
                                               val_name=curve_val_name(run_settings(newest)[0])),
                log: str(newest.get("message") or ""), **tables(root, True, run_list),
                timer: gr.Timer(active=False)}

    def show_job(job_id: str, root: str, initial: bool = False) -> dict:
        """Everything that depends on the watched job (the components of `outputs`)."""
        if not job_id:
            return show_newest_run(root)
        job = api.job(job_id)
        finished, events = read_job(job)
        status = job_status(job, events, api.queue_position(job))
        figure = charts.training_curves(charts.history_from_events(events),
                                        val_name=curve_val_name(job.config))
        log_text = "\n".join(e["message"].strip().splitlines()[-1] for e in events
                             if e.get("type") == "log" and e.get("message"))
        if status.get("error"):
            log_text += f"\nError: {status['error']}"
        last_seq = events[-1]["seq"] if events else 0
        return {seen: last_seq, progress: progress_html(status), curves: figure, log: log_text.strip(),
                **tables(root, initial or finished), timer: gr.Timer(active=not finished)}

    @requires("viewer")
    @user_errors
    def on_project(root: str) -> dict:
        job_id = api.latest_train_job(root) if root else ""
        form = {}
        job = api.job(job_id) if job_id else None
        if job is not None and not job.is_finished:  # a reload mid-run: the form shows what it runs with
            restored = form_values(job.config)
            form = {field: gr.update(value=restored[name]) for name, field in form_fields.items()
                    if name in restored}
        return {watched: job_id, **show_job(job_id, root, True), **form}

    @requires("owner")
    @user_errors
    def on_start(root, *settings) -> dict:
        *fields, budget, processes = settings
        job_id = api.train(root, *fields, processes=processes, time_budget=budget)
        gr.Info(f"Training job {job_id} queued.")
        return {watched: job_id, **show_job(job_id, root, True)}

    @requires("owner")
    @user_errors
    def on_cancel(job_id: str, root: str) -> dict:
        if not job_id:
            raise gr.Error("There is no training job to cancel.")
        state = api.cancel(job_id)
        gr.Info(f"Job {job_id}: {state}.")
        return show_job(job_id, root)

    @requires("viewer")
    @user_errors
    def on_tick(job_id: str, root: str, last_seen: int) -> dict:
        # Redraw only when new events arrived (keeps the 2-second polling cheap).
        if not job_id:
            return {timer: gr.Timer(active=False)}
        finished, new_events = read_job(api.job(job_id), last_seen)
        if new_events:
            return show_job(job_id, root)
        if finished:  # its last events were drawn before it counted as finished: list its run once more
            return {**tables(root, True), timer: gr.Timer(active=False)}
        return {timer: gr.Timer(active=True)}

    @requires("viewer")
    @user_errors
    def on_refresh(root: str) -> dict:
        return tables(root, True)

    @requires("viewer")
    @user_errors
    def on_compare(run_dirs: list[str]):
        return charts.compare_runs({Path(d).name: api.curve_rows(d) for d in run_dirs or []})

    settings = [backbone, strategy, epochs, lr, batch_size, image_size, augment, time_budget, processes]
    backbone.change(backbone_note, backbone, backbone_help, api_visibility="private")

    @requires("viewer")
    @user_errors
    def on_strategy(chosen: str) -> tuple[str, Any]:
        # The budget is auto's alone: the other strategies run the epochs they are given.
        return strategy_note(chosen), gr.Number(visible=chosen == "auto")

    strategy.change(on_strategy, strategy, [strategy_help, time_budget], api_visibility="private")

    @requires("viewer")
    @user_errors
    def on_augment_note(root: str, choice: str) -> str:
        return api.augment_note(root, choice)

    gr.on([augment.change, binding.root.change], on_augment_note, [binding.root, augment], augment_help,
          api_visibility="private")
    if binding.tab is not None:  # the Augment tab may have saved new settings meanwhile
        binding.tab.change(
            lambda tab, root, choice: on_augment_note(root, choice) if tab == "train" else gr.skip(),
            [binding.tab, binding.root, augment],
            augment_help,
            api_visibility="private",
        )
    form_fields = {"backbone": backbone, "strategy": strategy, "epochs": epochs, "lr": lr,
                   "batch_size": batch_size, "image_size": image_size, "time_budget": time_budget}
    binding.root.change(on_project, binding.root, [watched, *outputs, *form_fields.values()],
                        api_visibility="private")
    start.click(on_start, [binding.root, *settings], [watched, *outputs], api_visibility="private")
    cancel.click(on_cancel, [watched, binding.root], outputs, api_visibility="private")
    timer.tick(
        on_tick, [watched, binding.root, seen], outputs, api_visibility="private", show_progress="hidden"
    )
    refresh.click(on_refresh, binding.root, [jobs, runs, compare], api_visibility="private")
    compare.change(on_compare, compare, compare_plot, api_visibility="private")

    @requires("owner")
    @user_errors
    def on_lr_find(root, *chosen):
        from studio.train.lr_find import sweep_chart
        from studio.ui.evaluate_tab import wait_for

        *fields, _budget, _processes = chosen  # the sweep's length is fixed; it runs in one process
        job = api.lr_find_job(root, *fields)
        for line in wait_for(job, "Finding a learning rate"):
            yield {lr_find_text: line}
        result = job.result
        rate = result["suggested_lr"]
        text = (f"Suggested learning rate **{rate:.2e}** ({result['steps']} steps)." if rate else
                "No clear suggestion: the loss did not fall during the sweep. Keep the automatic rate.")
        yield {lr_find_text: text, lr_find_plot: gr.Plot(sweep_chart(result), visible=True),
               **({lr: round(rate, 8)} if rate else {})}

    lr_find_button.click(on_lr_find, [binding.root, *settings], [lr_find_text, lr_find_plot, lr],
                         api_visibility="private")
    api.register()
