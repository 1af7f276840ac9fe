"""Curation commands: curate (find problems), review (answer a label issue), dedupe (resolve a group),
restore (undo an exclusion or a decision)."""

from __future__ import annotations

import argparse

from studio.cli import add_command
from studio.curate import decisions
from studio.data.store import Project


def register(subparsers) -> None:
    """Add the curation subcommands to the `studio` parser."""

    def add(name: str, handler, help_text: str, text=None) -> argparse.ArgumentParser:
        return add_command(subparsers, name, handler, help_text, text)

    parser = add("curate", _curate, "find near-duplicates, train/val leakage, likely label errors, outliers "
                 "and dataset warnings", text=_curate_text)
    parser.add_argument("project")
    parser.add_argument("--backbone", default=None, help="feature backbone (default: the studio's default)")
    parser.add_argument("--weights", default=None, help="weights file for the backbone (timm layout)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="list at most this many ranked labels (most likely wrong first)",
    )

    parser = add("review", _review, "answer a label issue: accept the suggestion (--label CLASS), keep the "
                 "label, mark it ambiguous, or exclude the image from training")
    parser.add_argument("project")
    parser.add_argument("image_id", type=int)
    parser.add_argument("answer", choices=tuple(decisions.REVIEW_DECISIONS))
    parser.add_argument("--label", default=None, help="the class to relabel to (with accept)")
    parser.add_argument("--by", default="user", help="who decided (kept with the decision)")

    parser = add("dedupe", _dedupe, "resolve a duplicate group: keep one image (the others are excluded "
                 "from training; files and labels stay) or keep all")
    parser.add_argument("project")
    parser.add_argument("image_ids", type=int, nargs="+", help="the group's image ids")
    parser.add_argument("--keep", required=True, help="image id to keep, or 'all'")
    parser.add_argument("--by", default="user")

    parser = add(
        "restore", _restore, "forget curation decisions about images (excluded ones are trained on again)"
    )
    parser.add_argument("project")
    parser.add_argument("image_ids", type=int, nargs="+")
    parser.add_argument("--kind", choices=decisions.KINDS, default=None, help="only this kind of decision")


# The handlers import the curation engine when called: cleanlab and scikit-learn take seconds to load,
# which every other `studio` command (and --help) would otherwise pay.
def _curate(args) -> dict:
    from studio.curate.analysis import analyse

    with Project.open(args.project) as project:
        # Stored where the Curate tab reads it: the tab shows this analysis and reviews its findings.
        report = analyse(project, backbone=args.backbone, weights=args.weights, device=args.device,
                         label_issue_limit=args.limit)
    report.pop("embedding", None)  # the map's coordinates are for the tab, not for the terminal
    return report


def _review(args) -> dict:
    from studio.curate.label_issues import review

    with Project.open(args.project) as project:
        outcome = decisions.REVIEW_DECISIONS[args.answer]
        label = review(project, args.image_id, outcome, label=args.label, by=args.by)
        return {"image_id": args.image_id, "decision": outcome, "label": label}


def _dedupe(args) -> dict:
    from studio.curate.duplicates import resolve_group

    keep = args.keep if args.keep == "all" else _int_or_text(args.keep)
    with Project.open(args.project) as project:
        return resolve_group(project, args.image_ids, keep, by=args.by)


def _restore(args) -> dict:
    with Project.open(args.project) as project:
        return {"cleared": decisions.clear(project, args.image_ids, args.kind)}


def _int_or_text(value: str) -> int | str:
    return int(value) if value.strip().lstrip("-").isdigit() else value


def _curate_text(result: dict) -> str:
    lines = [(f"project: {result['project']}  backbone: {result['backbone']}  images: {result['images']}  "
             f"excluded: {result['excluded']}")]
    lines.append(f"duplicate groups: {len(result['duplicates'])}")
    for group in result["duplicates"]:
        flags = " (leakage)" if group["leakage"] else ""
        flags += " (conflicting labels)" if group["conflicting_labels"] else ""
        lines.append(f"  images {', '.join(map(str, group['image_ids']))}{flags}")
    lines.append(f"train/val leakage pairs: {len(result['leakage'])}")
    flagged = [issue for issue in result["label_issues"] if issue.get("flagged", True)]
    lines.append(
        f"likely label errors: {len(flagged)} "
        f"(of {len(result['label_issues'])} labels ranked; --json lists all)"
    )
    for issue in flagged[:20]:
        lines.append(
            f"  image {issue['image']} ({issue.get('original_name')}): labeled {issue['label']}, looks like "
            f"{issue['suggested']} (label quality {issue['score']:.2f})"
        )
    lines.append(f"outliers: {len(result['outliers'])}")
    for outlier in result["outliers"][:20]:
        lines.append(f"  image {outlier['image']} (z {outlier['z']:.1f}, nearest {outlier['nearest_class']})")
    lines += [f"warning: {warning}" for warning in result["warnings"]]
    return "\n".join(lines)
