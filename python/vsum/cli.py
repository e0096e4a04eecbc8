"""The ``vsum`` command.

Sub-commands: ``demo``, ``models``, ``classify``, ``masks``, ``summarize``, ``sweep``, ``compare``, ``eval-flow``, ``eval-parts``. Every user or environment
error (bad option values, unusable input or output paths, permission denied, a full disk) ends with one
``vsum: error: ...`` line and exit status 2, never a traceback; a bad image file is skipped with its reason and the
run goes on.  An unexpected exception (a bug) prints one ``vsum: internal error: ...`` line and exits with status 1;
``VSUM_DEBUG=1`` shows its traceback instead.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from ._config import PRECISIONS
from ._version import __version__
from .errors import VsumError

#: Largest ``--seed``: the selective-search seed of stage 2 is 32-bit (torch accepts it too).
MAX_SEED = 2**32 - 1
#: ``--threads`` may be at most this many times the number of CPUs (``os.cpu_count()``).
THREADS_PER_CPU = 4


class _UsageError(Exception):
    """A command line argparse rejects; ``main`` prints it as one ``vsum: error:`` line."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``vsum: error: <what> (see `vsum masks --help`)``, status 2."""

    def error(self, message: str):
        raise _UsageError(f"{message} (see `{self.prog} --help`)")


def _int_option(low: int, high: int | None = None, *, high_text: str | None = None):
    """An argparse type: a plain ASCII integer in ``low..high`` (``high`` None: no upper bound)."""

    def parse(text: str) -> int:
        if not re.fullmatch(r"[+-]?[0-9]+", text.strip()):
            raise argparse.ArgumentTypeError(f"expected an integer; got {text!r}")
        value = int(text)
        top = high_text or (str(high) if high is not None else None)
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be an integer in {low}..{top}; got {value}" if top
                                             else f"must be an integer >= {low}; got {value}")
        return value

    return parse


def max_threads() -> int:
    """The largest ``--threads``: :data:`THREADS_PER_CPU` x ``os.cpu_count()``."""
    return THREADS_PER_CPU * (os.cpu_count() or 1)


_THREADS = _int_option(1, max_threads(), high_text=f"{max_threads()} ({THREADS_PER_CPU} x the {os.cpu_count() or 1} CPUs)")
_SEED = _int_option(0, MAX_SEED, high_text="2**32-1")
_POSITIVE = _int_option(1)


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", default="efficientnet_lite0",
                        help="model name (see `vsum models`; default: efficientnet_lite0, offline)")
    parser.add_argument("--weights", default=None,
                        help="state-dict file for the model, or 'random' (plumbing tests only)")
    parser.add_argument("--offline", action="store_true", help="never download weights")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    _add_threads_option(parser, "CPU threads for torch and the compiled core")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def _batch_size(text: str) -> int:
    """``--batch-size``: ``auto`` (0: chosen for the device) or an integer >= 1."""
    return 0 if text.strip().lower() == "auto" else _POSITIVE(text)


EARLY_STOP_DEFAULT = 20


def _add_stage1_options(parser: argparse.ArgumentParser) -> None:
    """The stage-1 options shared by ``masks`` and ``summarize``."""
    parser.add_argument("--batch-size", type=_batch_size, default=0, metavar="N|auto",
                        help="images optimised together in stage 1 (default auto: from the CPU's cache size, "
                             "or from the free memory of a GPU)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="arithmetic of the network in the stage-1 optimisation (default fp32; bf16 on CPUs "
                             "with bfloat16 and on GPUs, fp16 on GPUs: faster, masks differ slightly)")
    parser.add_argument("--smooth-iters", type=_POSITIVE, default=None, help="smooth-pass iterations (default 300)")
    parser.add_argument("--sharp-iters", type=_POSITIVE, default=None,
                        help="sharp-pass iterations (default 150; 50 with --superpixels)")
    parser.add_argument("--early-stop", type=_POSITIVE, nargs="?", const=EARLY_STOP_DEFAULT, default=0, metavar="K",
                        help=f"stop a mask once its binary mask and loss have not changed for K steps (default "
                             f"K {EARLY_STOP_DEFAULT}; off unless given: faster, masks differ slightly)")
    parser.add_argument("--superpixels", type=_POSITIVE, default=0, metavar="N",
                        help="sharp pass on about N SLIC superpixels instead of pixels (the authors' variant; "
                             "2000 is typical; off unless given)")


def _mask_config(args):
    """The ``MaskConfig`` of ``masks``/``summarize`` options."""
    from .masks import MaskConfig

    try:
        return MaskConfig(batch_size=args.batch_size, seed=args.seed,
                          keep_misclassified=getattr(args, "keep_misclassified", False), precision=args.precision,
                          early_stop=args.early_stop, superpixels=args.superpixels,
                          ).with_iterations(args.smooth_iters, args.sharp_iters)
    except ValueError as exc:
        raise VsumError(str(exc)) from exc


def _add_threads_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--threads", type=_THREADS, default=None,
                        help=f"{what}, 1..{THREADS_PER_CPU} x the CPUs (default: every CPU)")


def _check_out_folder(path: str) -> None:
    """``--out`` of a run folder: not an existing file, creatable, writable; checked before any work."""
    from .io import display_text

    folder = os.path.abspath(path)
    shown = display_text(path)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise VsumError(f"--out {shown} is an existing file, not a folder; give a folder name")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise VsumError(f"--out {shown}: cannot create the folder ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise VsumError(f"--out {shown}: the folder is not writable (Permission denied)")


def _check_out_file(path: str) -> None:
    """``--out`` of a single output file: not a folder, in a writable folder; checked before any work."""
    from .io import display_text

    target = os.path.abspath(path)
    shown = display_text(path)
    if os.path.isdir(target):
        raise VsumError(f"--out {shown} is an existing folder; give a file name")
    parent = os.path.dirname(target)
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise VsumError(f"--out {shown}: {display_text(parent)} is a file, not a folder (Not a directory)")
    if os.path.isdir(parent) and not os.access(parent, os.W_OK | os.X_OK):
        raise VsumError(f"--out {shown}: the folder {display_text(parent)} is not writable (Permission denied)")


def _set_threads(threads: int | None) -> None:
    """``--threads``: :func:`vsum.threads.set_num_threads` (None keeps the defaults: every usable core)."""
    if threads is not None:
        from .threads import set_num_threads

        try:
            set_num_threads(threads)
        except ValueError as exc:
            raise VsumError(f"--threads: {exc}") from None


def _load(args):
    """The model of ``--model``/``--weights``/``--device``; applies ``--threads`` to torch and the core."""
    from .models import load_model

    classifier = load_model(args.model, weights=args.weights, device=args.device, allow_download=not args.offline)
    _set_threads(args.threads)  # after torch is imported, so that it applies to torch too
    return classifier


def resolve_target(value: str | None, class_names: list[str]) -> int | None:
    """``"146"`` or a class name (case-insensitive) -> class index."""
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch(r"[+-]?[0-9]+", text):  # ASCII digits only: str.isdigit() accepts '²', which int() rejects
        index = int(text)
    else:
        matches = [i for i, name in enumerate(class_names) if name.lower() == text.lower()]
        if not matches:
            raise VsumError(f"--target '{value}' is neither a class index nor a class name of this model")
        index = matches[0]
    if not 0 <= index < len(class_names):
        raise VsumError(f"--target {index} is outside the model's {len(class_names)} classes")
    return index


def cmd_models(args) -> int:
    from .models import available_models

    rows = available_models()
    if not args.all:
        rows = [r for r in rows if r["kind"] == "offline" or r["name"] in _PAPER_MODELS or r["weights"].startswith("/")]
    width = max(len(r["name"]) for r in rows)
    print(f"{'name':<{width}}  input  weights")
    for row in rows:
        print(f"{row['name']:<{width}}  {row['input_size']:>5}  {row['weights']}")
    if not args.all:
        print("(torchvision's other classification architectures are accepted too: `vsum models --all`)")
    return 0


_WAIT_HELP = "when another vsum run is writing to the same --out, wait for it (default: stop with one line naming it)"

_PAPER_MODELS = ("alexnet", "vgg16", "googlenet", "inception_v3", "resnet50")


def cmd_classify(args) -> int:
    from .classify import classify, write_predictions_csv

    _check_out_file(args.out)
    classifier = _load(args)
    predictions = classify(args.images, classifier, top=args.top, batch_size=args.batch_size, progress=not args.quiet)
    top = max(1, min(args.top, classifier.num_classes))
    write_predictions_csv(predictions, args.out, classifier, top)
    ok = sum(p.status == "ok" for p in predictions)
    print(f"classified {ok} of {len(predictions)} images with {classifier.name}; predictions in {args.out}")
    return 0


def cmd_masks(args) -> int:
    from .masks import compute_masks, write_mask_outputs

    if args.demo == bool(args.images):
        raise VsumError("give an image folder/files or --demo (not both)")
    if args.demo:
        from .demo import demo_image_paths

        images = demo_image_paths()
    else:
        images = args.images[0] if len(args.images) == 1 else args.images
    _check_out_folder(args.out)
    classifier = _load(args)
    target = resolve_target(args.target, classifier.class_names)
    config = _mask_config(args)
    from .runlock import RunLock

    with RunLock(args.out, wait=args.wait):
        run = compute_masks(images, classifier, target=target, config=config, progress=not args.quiet)
        result = write_mask_outputs(run, args.out, classifier)
    print(_masks_paragraph(run, result, classifier, target, args.out))
    return 0


def _skip_reasons(skipped: list[dict]) -> str:
    """``"3 misclassified, 1 empty file"``: skipped images counted by reason (details in parentheses dropped)."""
    reasons: dict[str, int] = {}
    for item in skipped:
        reason = item["reason"].split(" (")[0]
        reasons[reason] = reasons.get(reason, 0) + 1
    return ", ".join(f"{n} {r}" for r, n in reasons.items())


def _masks_paragraph(run, result, classifier, target, out) -> str:
    counts = result["counts"]
    what = f"class {target} '{classifier.class_name(target)}'" if target is not None else "each image's top-1 class"
    text = (f"Explained {counts['kept']} of {counts['images']} images for {what} with {classifier.name} "
            f"in {run.seconds:.0f} s ({result['timings']['image_iterations_per_second'] or 0:.1f} image-iterations/s).")
    sharp = result["means"].get("sharp") or {}
    if sharp:
        text += (f" Sharp masks: mean drop {sharp['drop']:.3f}, mean salient area {sharp['area']:.3f}, "
                 f"mean crisp {sharp['crisp']:.3f}.")
    if counts["skipped"]:
        text += f" Skipped {_skip_reasons(result['skipped'])} (see metrics.csv)."
    return text + f" Outputs in {out}/ (masks/, metrics.csv, result.json)."


def cmd_summarize(args) -> int:
    from .pipeline import PipelineConfig, summarize
    from .proposals import ProposalConfig

    _check_out_folder(args.out)
    classifier = _load(args)
    target = resolve_target(args.target, classifier.class_names)
    try:
        config = PipelineConfig(masks=_mask_config(args), proposals=ProposalConfig(num=args.proposals, seed=args.seed))
    except ValueError as exc:
        raise VsumError(str(exc)) from exc
    run = summarize(args.images, classifier, target=target, out=args.out, config=config, force=args.force,
                    progress=not args.quiet, wait=args.wait)
    print(_summarize_paragraph(run.result, classifier, args.out))
    return 0


def cmd_demo(args) -> int:
    from .demo import DemoConfig, run_demo

    _check_out_folder(args.out)
    classifier = _load(args)
    try:
        given = {"views": args.views, "smooth_iterations": args.smooth_iters, "sharp_iterations": args.sharp_iters}
        config = DemoConfig(**{name: value for name, value in given.items() if value is not None})
    except ValueError as exc:
        raise VsumError(str(exc)) from exc
    print(f"vsum demo: {config.views} views of scikit-image's cat photo (chelsea.png) as one class, written to "
          f"{args.out}/images/; stage-1 iterations reduced to {config.smooth_iterations} smooth + "
          f"{config.sharp_iterations} sharp (published: 300 + 150); every other parameter is the published default.")
    run = run_demo(args.out, classifier, config, force=args.force, progress=not args.quiet, wait=args.wait)
    print(_summarize_paragraph(run.result, classifier, args.out))
    return 0


def _summarize_paragraph(result: dict, classifier, out) -> str:
    c, t = result["counts"], result["timings"]
    target = result["target"]
    what = f"class {target} '{classifier.class_name(target)}'" if target is not None else "each image's top-1 class"
    text = (f"Summarized {what} with {classifier.name}: kept {c['images_kept']} of {c['images']} images; "
            f"{c.get('proposals', 0)} proposals, {c.get('valid', 0)} valid, {c.get('kept', 0)} kept after pruning; "
            f"{c.get('clusters', 0)} clusters, {c.get('summaries', 0)} summaries.")
    if result["skipped"]:
        text += f" Skipped {_skip_reasons(result['skipped'])}."
    if result["reason"]:
        text += f" No summaries: {result['reason']}."
    for note in result.get("notes", []):
        text += f" Note: {note}."
    stages = ", ".join(f"{name} {t[name]:.1f} s" + (" (cached)" if name in result["reused"] else "")
                       for name in ("masks", "proposals", "descriptors", "pairs", "summaries"))
    text += f" Time: {stages}; total {t['total']:.1f} s."
    return text + f" Outputs in {out}/ (report.html, result.json, clusters.json, summaries/, masks/)."


def cmd_eval_parts(args) -> int:
    from .io import display_text
    from .parts import PartsConfig, evaluate_parts

    result = evaluate_parts(args.run, args.keypoints, args.parts, PartsConfig(draws=args.draws, seed=args.seed))
    print(f"{'summary':>7}  {'dominant part':<16} {'consistency':>11} {'chance':>7} {'p':>6}")
    for s in result["summaries"]:
        print(f"{s['summary']:>7}  {display_text(str(s['dominant'] or 'none')):<16} {s['consistency']:>11.2f} "
              f"{s['chance'] if s['chance'] is not None else float('nan'):>7.2f} "
              f"{s['p_value'] if s['p_value'] is not None else float('nan'):>6.3f}")
    c = result["class"]
    print(f"Mean consistency {c['mean_consistency']} against {c['mean_chance']} by chance over {c['scored']} "
          f"summaries; dominant parts: {', '.join(c['dominant_parts']) or 'none'}. "
          f"Written to {display_text(str(args.run))}/parts.json and report.html.")
    return 0


def cmd_eval_flow(args) -> int:
    from .evaluate import FlowEvalConfig, evaluate_flow, format_table
    from .io import atomic_write_json

    methods = [m for value in args.method for m in value.split(",") if m] or ["lom"]
    if "all" in methods:
        methods = ["nam", "phm", "lom"]
    config = FlowEvalConfig(methods=tuple(methods), num_proposals=args.proposals, seed=args.seed, fill=args.fill,
                            max_side=args.max_side or None)
    if args.out:
        _check_out_file(args.out)
    _set_threads(args.threads)
    result = evaluate_flow(args.dataset, config, progress=not args.quiet)
    if args.out:
        atomic_write_json(args.out, result)
    print(format_table(result))
    pairs = sum(c["pairs"] for c in result["classes"])
    means = ", ".join(f"{m.upper()} {r['0.1']:.3f}" for m, r in result["mean"].items() if r.get("0.1") is not None)
    print(f"{len(result['classes'])} classes, {pairs} ordered pairs, {result['seconds']['total']:.0f} s "
          f"(stages 2-3 {result['seconds']['prepare']:.0f} s)." + (f" Mean PCK@0.1: {means}." if means else "")
          + (f" Results in {args.out}." if args.out else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vsum", description="Visual summaries of what an image classifier relies on.")
    parser.add_argument("--version", action="version", version=f"vsum {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="stages 1-5 on a built-in image set (no data needed; a few minutes on a CPU)",
                          description="Visual summaries of a built-in class: views of scikit-image's cat photo, "
                                      "with reduced stage-1 iterations (stated when it starts).")
    _add_model_options(demo)
    demo.add_argument("--out", "-o", default="runs/demo", help="run folder (default: runs/demo)")
    from .demo import DemoConfig

    demo_defaults = DemoConfig()
    demo.add_argument("--views", type=_POSITIVE, default=None, help=f"images in the demo class (default {demo_defaults.views})")
    demo.add_argument("--smooth-iters", type=_POSITIVE, default=None,
                      help=f"smooth-pass iterations (default {demo_defaults.smooth_iterations}; published 300)")
    demo.add_argument("--sharp-iters", type=_POSITIVE, default=None,
                      help=f"sharp-pass iterations (default {demo_defaults.sharp_iterations}; published 150)")
    demo.add_argument("--force", action="store_true", help="recompute every stage, ignoring the cache")
    demo.add_argument("--wait", action="store_true", help=_WAIT_HELP)
    demo.set_defaults(func=cmd_demo)

    models = sub.add_parser("models", help="list the models vsum can load")
    models.add_argument("--all", action="store_true", help="list every torchvision classification architecture")
    models.set_defaults(func=cmd_models)

    classify = sub.add_parser("classify", help="top-k predictions per image (CSV)")
    classify.add_argument("images", help="image folder or file")
    _add_model_options(classify)
    classify.add_argument("--top", type=_POSITIVE, default=5, help="classes per image (default 5)")
    classify.add_argument("--batch-size", type=_POSITIVE, default=32, help="images per forward pass (default 32)")
    classify.add_argument("--out", "-o", required=True, help="CSV file to write")
    classify.set_defaults(func=cmd_classify)

    masks = sub.add_parser("masks", help="stage 1: crisp saliency masks per image")
    masks.add_argument("images", nargs="*", help="image folder, or image files")
    masks.add_argument("--demo", action="store_true", help="use the built-in demo photos (scikit-image)")
    _add_model_options(masks)
    masks.add_argument("--target", "-t", default=None,
                       help="class index or name to explain (default: each image's top-1 class)")
    masks.add_argument("--keep-misclassified", action="store_true",
                       help="explain images whose top-1 class is not the target instead of skipping them")
    masks.add_argument("--seed", type=_SEED, default=0, help="seeds torch before each batch (0..2**32-1)")
    _add_stage1_options(masks)
    masks.add_argument("--out", "-o", required=True, help="output folder")
    masks.add_argument("--wait", action="store_true", help=_WAIT_HELP)
    masks.set_defaults(func=cmd_masks)

    summarize = sub.add_parser("summarize", help="stages 1-5: visual summaries of one class",
                               description="Explain the images of one class (masks), propose, describe and match "
                               "regions, and cluster them into visual summaries. Outputs and a resumable cache "
                               "go to the run folder; rerunning the same command reuses finished stages.")
    summarize.add_argument("images", help="image folder (one class), or an image file")
    _add_model_options(summarize)
    summarize.add_argument("--target", "-t", default=None,
                           help="class index or name (default: each image's top-1 class)")
    summarize.add_argument("--out", "-o", required=True, help="run folder")
    _add_stage1_options(summarize)
    summarize.add_argument("--proposals", type=_POSITIVE, default=500, help="selective-search proposals per image (default 500)")
    summarize.add_argument("--seed", type=_SEED, default=0,
                           help="seed of stage 1 and of the proposal ranking (0..2**32-1)")
    summarize.add_argument("--force", action="store_true", help="recompute every stage, ignoring the cache")
    summarize.add_argument("--wait", action="store_true", help=_WAIT_HELP)
    summarize.set_defaults(func=cmd_summarize)

    from .cli_sweep import add_sweep_parser

    add_sweep_parser(sub, _POSITIVE, _SEED, _add_stage1_options, _WAIT_HELP, _mask_config, _check_out_folder)
    from .compare import add_compare_parser

    add_compare_parser(sub)

    evalparts = sub.add_parser("eval-parts", help="part consistency of a run's summaries against keypoints",
                               description="For each summary of RUN: the part groups its members' boxes hold "
                               "(a visible keypoint of the group inside the box), the dominant group, the share of "
                               "members holding it (consistency), the same with keypoints of other random photos "
                               "(chance) and a permutation p-value. Written to RUN/parts.json and report.html.")
    evalparts.add_argument("run", help="a finished run folder (vsum summarize)")
    evalparts.add_argument("keypoints", help="the class's photos with keypoints.json (as for eval-flow)")
    evalparts.add_argument("--parts", default=None,
                           help="parts.json grouping the keypoints (default: each keypoint is its own part)")
    evalparts.add_argument("--draws", type=_POSITIVE, default=200, help="random draws for chance (default 200)")
    evalparts.add_argument("--seed", type=_SEED, default=0, help="seed of the draws")
    evalparts.set_defaults(func=cmd_eval_parts)

    evalflow = sub.add_parser("eval-flow", help="keypoint PCK of the dense flow (PF-WILLOW style benchmark)",
                              description="For every ordered pair of images within each class, transfer A's "
                              "keypoints to B through the dense flow and report PCK at alpha 0.05/0.1/0.2 "
                              "(per class, then the mean over classes). DATASET holds one folder per class with "
                              "images and keypoints.json ({file name: [[x, y] or null, ...]}).")
    from .evaluate import DEFAULT_MAX_SIDE

    evalflow.add_argument("dataset", help="keypoint dataset folder (one sub-folder per class)")
    evalflow.add_argument("--method", action="append", default=[], metavar="{nam,phm,lom,all}",
                          help="matcher(s) to evaluate; repeat or comma-separate (default: lom)")
    evalflow.add_argument("--fill", choices=["fgs", "nearest", "sd"], default="fgs",
                          help="hole filling of the dense flow (default: fgs, the edge-aware fast global smoother)")
    evalflow.add_argument("--proposals", type=_POSITIVE, default=500, help="selective-search proposals per image (default 500)")
    evalflow.add_argument("--seed", type=_SEED, default=0, help="selective-search ranking seed (0..2**32-1)")
    evalflow.add_argument("--max-side", type=_int_option(0), default=DEFAULT_MAX_SIDE,
                          help=f"downscale images whose longer side exceeds this many pixels, keypoints with them "
                               f"(default {DEFAULT_MAX_SIDE}; 0: full resolution)")
    _add_threads_option(evalflow, "threads of the compiled core")
    evalflow.add_argument("--out", "-o", default=None, help="write the full result as JSON here")
    evalflow.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    evalflow.set_defaults(func=cmd_eval_flow)
    return parser


def _os_error_text(exc: OSError) -> str:
    """``<path>: <reason>`` of an OSError (both paths for a rename), valid UTF-8."""
    from .io import display_text

    reason = exc.strerror or str(exc)
    paths = [display_text(os.fsdecode(p)) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else reason


def _backslash_stdout() -> None:
    """Print names that are not valid UTF-8 with ``\\xNN`` instead of failing (stderr already does)."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        try:
            reconfigure(errors="backslashreplace")
        except (ValueError, OSError):
            pass


def main(argv: list[str] | None = None) -> int:
    _backslash_stdout()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(f"vsum: error: {exc}", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except VsumError as exc:
        print(f"vsum: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vsum: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `vsum models | head`: the reader left, nothing to report
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:  # the environment: missing files, permissions, a full disk, a read-only file system
        print(f"vsum: error: {_os_error_text(exc)}", file=sys.stderr)
        return 2
    except MemoryError:
        print("vsum: error: out of memory (try a smaller --batch-size or fewer images)", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: one line by default, the traceback with VSUM_DEBUG=1
        if os.environ.get("VSUM_DEBUG") == "1":
            raise
        print(f"vsum: internal error: {type(exc).__name__}: {exc} (a bug in vsum; rerun with VSUM_DEBUG=1 to see "
              f"the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
