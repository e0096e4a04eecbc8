"""``vsum sweep``: the command-line form of :func:`vsum.sweep.sweep` (registered by :mod:`vsum.cli`)."""

from __future__ import annotations

import argparse

from .errors import VsumError

__all__ = ["add_sweep_parser", "cmd_sweep"]


def add_sweep_parser(sub, positive, seed, add_stage1_options, wait_help: str, mask_config, check_out_folder) -> None:
    """Register ``vsum sweep`` on the sub-parsers ``sub``.

    The option types and helpers shared with :mod:`vsum.cli` are passed in,
    so that this module does not import it (no import cycle).
    """
    from .sweep import IMAGE_SETS
    from .sweep_backends import BACKENDS

    sweep = sub.add_parser(
        "sweep", help="many classes x several models: one run per (model, class), resumable, local or on Ray",
        description="Run `vsum summarize` for every class of ROOT with every model, into "
                    "SWEEP/runs/<model>/<class>/ (and SWEEP/runs-common/ on the photos every model classifies "
                    "correctly), then write SWEEP/sweep.csv and sweep.json. Stages 2-3 of an image are shared by "
                    "models of the same input size. Rerunning the same command resumes a stopped sweep and "
                    "retries failed tasks; finished ones are not touched.")
    sweep.add_argument("root", help="one folder per class (named by class index, WordNet id or class name), "
                                    "or a flat image folder with --labels")
    sweep.add_argument("--models", required=True,
                       help="comma-separated [LABEL=]NAME[@WEIGHTS], e.g. efficientnet_lite0,efficientnet_lite2 "
                            "or r50=resnet50@/path/resnet50.pth")
    sweep.add_argument("--out", "-o", required=True, help="sweep folder")
    sweep.add_argument("--labels", default=None, metavar="FILE.csv", help="image,class rows for a flat ROOT")
    sweep.add_argument("--classes", default=None, metavar="C1,C2,...", help="only these classes of ROOT")
    sweep.add_argument("--max-images", type=positive, default=None, metavar="N",
                       help="the first N photos of each class, in sorted order")
    sweep.add_argument("--stages", choices=["all", "masks"], default="all",
                       help="every stage (default), or stage 1 alone")
    sweep.add_argument("--images", choices=IMAGE_SETS, default=None,
                       help="each model's own photos, the photos every model classifies correctly, or both "
                            "(default: both for a full sweep of several models, else own)")
    sweep.add_argument("--backend", choices=BACKENDS, default="local",
                       help="local processes (default), or a Ray cluster (pip install \"visual-summaries[ray]\")")
    sweep.add_argument("--workers", type=positive, default=None,
                       help="tasks at once (default: the CPUs divided by --threads)")
    sweep.add_argument("--threads", type=positive, default=1,
                       help="threads per task (default 1); results depend on it, not on --workers or the backend")
    sweep.add_argument("--address", default=None,
                       help="Ray cluster: auto or ray://host:port (default: start a local one)")
    sweep.add_argument("--retries", type=int, default=2, help="Ray: retries of a task that raised (default 2)")
    sweep.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                       help="where stage 1 runs (default cpu); with cuda one process runs stage 1 on the GPU")
    add_stage1_options(sweep)
    sweep.add_argument("--proposals", type=positive, default=500,
                       help="selective-search proposals per image (default 500)")
    sweep.add_argument("--seed", type=seed, default=0, help="seed of stage 1 and of the proposal ranking")
    sweep.add_argument("--force", action="store_true", help="recompute every task and stage")
    sweep.add_argument("--wait", action="store_true", help=wait_help.replace("run", "sweep", 1))
    sweep.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    sweep.set_defaults(func=cmd_sweep, mask_config=mask_config, check_out_folder=check_out_folder)


def _config(args: argparse.Namespace, mask_config):
    from .pipeline import PipelineConfig
    from .proposals import ProposalConfig
    from .sweep import SweepConfig

    try:
        pipeline = PipelineConfig(masks=mask_config(args), proposals=ProposalConfig(num=args.proposals, seed=args.seed))
        return SweepConfig(stages=args.stages, images=args.images, max_images=args.max_images, threads=args.threads,
                           device=args.device, retries=args.retries, pipeline=pipeline)
    except ValueError as exc:
        raise VsumError(str(exc)) from exc


def cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import sweep

    if args.retries < 0:
        raise VsumError(f"--retries must be >= 0; got {args.retries}")
    config = _config(args, args.mask_config)
    args.check_out_folder(args.out)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    result = sweep(args.root, args.models, args.out, labels=args.labels, classes=classes, config=config,
                   backend=args.backend, workers=args.workers, address=args.address, force=args.force,
                   progress=not args.quiet, wait=args.wait)
    print(_paragraph(result))
    return 0


def _paragraph(result) -> str:
    from .io import display_text

    rows = result.rows
    text = (f"Swept {len({r['class'] for r in rows})} classes with {len(result.table['models'])} model(s): "
            f"{len(rows)} runs, {result.finished} computed now, {result.reused} finished earlier, "
            f"{result.failed} failed.")
    for m in result.table["per_model"]:
        if m["summaries_mean"] is not None:
            text += (f" {m['model']} ({m['image_set']} photos): top-1 {m['top1']}, "
                     f"{m['summaries_mean']:.1f} summaries per class.")
    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        first = failed[0]
        text += (f" First failure: {display_text(first['model'])}/{display_text(first['class'])}: "
                 f"{display_text(first['error'] or '')}.")
    return text + f" Tables in {display_text(str(result.out))}/sweep.csv and sweep.json."
