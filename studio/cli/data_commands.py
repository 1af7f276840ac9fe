"""Data commands: new, import, info, split, export, label, undo, history, classes."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from studio.cli import add_command
from studio.data.exporters import export_project
from studio.data.importers import import_source
from studio.data.layouts import LAYOUTS
from studio.data.store import IMPORT_BY, Project
from studio.errors import StudioError


def register(subparsers) -> None:
    """Add the data subcommands to the `studio` parser."""

    def add(name: str, handler, help_text: str, text=None) -> argparse.ArgumentParser:
        return add_command(subparsers, name, handler, help_text, text)

    parser = add("new", _new, "create an empty project folder")
    parser.add_argument("project")

    parser = add("import", _import, "import images from a folder, a CSV or a zip", text=_import_text)
    parser.add_argument("project", help="project folder (created if missing)")
    parser.add_argument("source", help="folder, .csv (path,label[,split]) or .zip")
    parser.add_argument("--layout", choices=("auto", *LAYOUTS), default="auto")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="share of new images for validation")
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/val split")

    parser = add("info", _info, "summarize a project: images, labels, classes, splits", text=_info_text)
    parser.add_argument("project")

    parser = add("split", _split, "give labeled images without a split a stratified train/val split",
                 text=_info_text)
    parser.add_argument("project")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="share of the images for validation")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split")
    parser.add_argument("--resplit", action="store_true",
                        help="split the labeled train and val images again too (test images never move)")

    parser = add("export", _export, "export labeled images as class folders plus labels.csv")
    parser.add_argument("project")
    parser.add_argument("dest", help="new or empty folder")
    parser.add_argument(
        "--no-split-folders", action="store_true", help="dest/<class>/ instead of dest/<split>/<class>/"
    )

    parser = add("label", _label, "set the label of one image (a new class name creates the class)")
    parser.add_argument("project")
    parser.add_argument("image_id", type=int)
    parser.add_argument(
        "label", metavar="CLASS", help="class name; use --none to remove the label", nargs="?"
    )
    parser.add_argument("--none", action="store_true", help="remove the image's label")
    parser.add_argument("--by", default="user", help="who made the change (kept in the label history)")

    parser = add("undo", _undo, "undo the last N label changes")
    parser.add_argument("project")
    parser.add_argument("n", type=int, nargs="?", default=1)
    parser.add_argument("--by", default=None,
                        help="undo only the changes made by this name (as given to `label --by`; `import` "
                             "for the labels an import set); default: the latest changes whoever made them, "
                             "except imports")

    parser = add("history", _history, "show the latest label changes")
    parser.add_argument("project")
    parser.add_argument("--limit", type=int, default=20)

    parser = add("classes", _classes, "list, rename, merge or delete classes (images are kept)")
    parser.add_argument("project")
    parser.add_argument("action", nargs="?", choices=("list", "rename", "merge", "delete"), default="list")
    parser.add_argument("names", nargs="*", help="rename OLD NEW | merge SOURCE... TARGET | delete NAME")


def _new(args) -> dict:
    with Project.create(args.project) as project:
        return {"project": str(project.root), "created": True}


def _import(args) -> dict:
    if not Path(args.source).expanduser().exists():  # before creating an empty project for nothing
        raise StudioError(f"{args.source} does not exist; give a folder, a .csv or a .zip to import")
    new = not Path(args.project).expanduser().exists()
    try:
        with Project.open_or_create(args.project) as project:
            report = import_source(
                project, args.source, args.layout, val_fraction=args.val_fraction, seed=args.seed
            )
            result = {**report.to_dict(), "project": str(project.root), "info": project.info()}
    except StudioError:
        if new:  # refused (a bad flag, an unreadable source): leave no empty project behind
            shutil.rmtree(Path(args.project).expanduser(), ignore_errors=True)
        raise
    if not result["imported"] and not result["duplicates"] and result["rejected"]:
        # Nothing came in and every file was refused: a script must not read that as success.
        print(f"error: nothing was imported; all {len(result['rejected'])} files were refused (see "
              "'rejected' for each reason)", file=sys.stderr)
        args.exit_code = 2
    return result


def _info(args) -> dict:
    with Project.open(args.project) as project:
        return project.info()


def _split(args) -> dict:
    with Project.open(args.project) as project:
        for warning in project.assign_splits(args.val_fraction, args.seed, resplit=args.resplit):
            print(f"warning: {warning}", file=sys.stderr)
        return project.info()


def _export(args) -> dict:
    with Project.open(args.project) as project:
        return export_project(project, args.dest, split_folders=not args.no_split_folders)


def _label(args) -> dict:
    if args.none == (args.label is not None):
        raise StudioError("give either a CLASS or --none (to remove the label)")
    with Project.open(args.project) as project:
        known = project.classes()
        changed = project.set_label(args.image_id, None if args.none else args.label, by=args.by)
        # The class as stored: names match without regard to case or accent encoding ('TULIP' is 'tulip').
        label = None if args.none else project.label_of(args.image_id)
        result = {"image_id": args.image_id, "label": label, "changed": changed}
        if label is not None and label not in known:  # likely a typo when the project already has classes
            result["new_class"] = True
            print(
                f"note: '{label}' is a new class (the others: {', '.join(known) or 'none'}); "
                f"if that was a typo, `studio undo {args.project}` takes the label back and "
                f"`studio classes {args.project} delete {label}` removes the class.",
                file=sys.stderr,
            )
        return result


def _undo(args) -> dict:
    with Project.open(args.project) as project:
        # Labels an import set are undone only when asked by name: `undo 1000` must not empty a project.
        return {"undone": project.undo(args.n, by=args.by, skip=() if args.by else (IMPORT_BY,))}


def _history(args) -> list[dict]:
    with Project.open(args.project) as project:
        return project.label_history(args.limit).to_dict("records")


def _classes(args) -> dict:
    expected = {"list": (0, 0), "rename": (2, 2), "merge": (2, None), "delete": (1, 1)}[args.action]
    low, high = expected
    if len(args.names) < low or (high is not None and len(args.names) > high):
        usage = {"list": "", "rename": "OLD NEW", "merge": "SOURCE... TARGET", "delete": "NAME"}[args.action]
        raise StudioError(f"usage: studio classes PROJECT {args.action} {usage}".rstrip())
    with Project.open(args.project) as project:
        result: dict = {"action": args.action}
        if args.action == "rename":
            project.rename_class(args.names[0], args.names[1])
        elif args.action == "merge":
            result["relabeled"] = project.merge_classes(args.names[:-1], args.names[-1])
        elif args.action == "delete":
            result["unlabeled"] = project.delete_class(args.names[0])
        result["classes"] = project.classes()
    changed = result.get("relabeled") or result.get("unlabeled")
    if changed:  # labels are user work: say how to get them back
        print(f"note: `studio undo {args.project} {changed}` brings those {changed} labels back.",
              file=sys.stderr)
    return result


def _import_text(result: dict) -> str:
    lines = [
        f"layout: {result['layout']}",
        (
            f"imported: {result['imported']}  duplicates: {result['duplicates']}  "
            f"rejected: {len(result['rejected'])}  skipped (hidden/system files): {result['skipped']}"
        ),
    ]
    lines += [f"rejected: {item['path']}: {item['reason']}" for item in result["rejected"]]
    lines += [f"warning: {warning}" for warning in result["warnings"]]
    lines.append(_info_text(result["info"]))
    return "\n".join(lines)


def _info_text(info: dict) -> str:
    lines = [
        f"project: {info['project']}",
        f"images: {info['images']}  labeled: {info['labeled']}  unlabeled: {info['unlabeled']}",
        f"splits: {json.dumps(info['splits'])}",
    ]
    width = max((len(name) for name in info["classes"]), default=5)
    for name in info["classes"]:
        counts = info["counts"][name]
        lines.append(f"  {name:<{width}}  " + "  ".join(f"{split} {n}" for split, n in counts.items()))
    return "\n".join(lines)
