"""``finprint train | evaluate | export | train-detector`` subcommands.

The main ``finprint`` CLI calls :func:`add_training_commands`; ``python -m
finprint_train.cli`` runs them on their own. Heavy imports (torch) happen inside the
handlers so that ``finprint --help`` works without the ``train`` extra.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from finprint.paths import PROJECT_ROOT

DEFAULT_CACHE = Path.home() / ".cache" / "finprint" / "images"
# The detector's hand-labelled boxes live with the tests that check them.
DEFAULT_BOX_LABELS = PROJECT_ROOT / "tests" / "training" / "detector_boxes.csv"


def _log_progress() -> None:
    """Training runs for hours: say what it does on stderr (a no-op when logging is set up)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def _data_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=None, help="dataset folders (default: $FINPRINT_DATA_DIR or ../shared/data)")


def _run_train(args: argparse.Namespace) -> None:
    _log_progress()
    from finprint_train.config import load_config
    from finprint_train.train import train

    cfg = load_config(args.config)
    if args.minutes is not None:
        cfg.minutes = args.minutes
    out = args.out or Path("runs") / cfg.name
    train(cfg, out, data_dir=args.data_dir, cache_dir=args.cache_dir, resume=args.resume, init_checkpoint=args.init_checkpoint)


def _run_evaluate(args: argparse.Namespace) -> None:
    _log_progress()
    if args.api:
        _run_evaluate_api(args)
        return
    from finprint_train.evaluate import evaluate_checkpoint

    if args.out is None:
        raise SystemExit("finprint evaluate --checkpoint needs --out (the report's folder)")
    evaluate_checkpoint(args.checkpoint, args.out, data_dir=args.data_dir, baselines=not args.no_baselines,
                        image_size=args.image_size)


def _run_evaluate_api(args: argparse.Namespace) -> None:
    from finprint_train.evaluation.protocol import ProtocolConfig
    from finprint_train.evaluation.run import ApiTarget, evaluate_api, markdown
    from finprint_train.data import default_data_dir

    if not args.api_key:
        raise SystemExit("finprint evaluate --api needs --api-key (or FINPRINT_API_KEY)")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would bury the progress
    target = ApiTarget(args.api, args.api_key, tag=args.tag, concurrency=args.concurrency)
    config = ProtocolConfig(queries_per_individual=args.queries_per_individual, max_known=args.max_known)
    report = evaluate_api(target, args.data_dir or default_data_dir(), args.repository, args.out,
                          split=args.split, config=config, species=args.species)
    print(markdown(report))


def _run_calibrate(args: argparse.Namespace) -> None:
    _log_progress()
    from finprint_train.data import default_data_dir
    from finprint_train.evaluation.calibrate import calibrate
    from finprint_train.evaluation.protocol import DEFAULT_CENTROID_WEIGHT

    weight = DEFAULT_CENTROID_WEIGHT if args.centroid_weight is None else args.centroid_weight
    record = calibrate(args.repository, args.data_dir or default_data_dir(), weight, write=not args.dry_run,
                       out_dir=args.out)
    print(json.dumps(record, indent=2))


def _run_export(args: argparse.Namespace) -> None:
    _log_progress()
    from finprint_train.export import export_embedder

    export_embedder(args.checkpoint, args.repository, report_path=args.report, max_batch_size=args.max_batch_size,
                    image_size=args.image_size)


def _run_quantize(args: argparse.Namespace) -> None:
    _log_progress()
    from finprint_train.data import default_data_dir
    from finprint_train.quantize import QuantizeOptions, quantize_model

    options = QuantizeOptions(format=args.format, per_channel=not args.per_tensor,
                              calibration_photos=args.calibration_photos, calibration_method=args.calibration_method,
                              exclude_first=args.exclude_first, exclude_last=args.exclude_last, seed=args.seed)
    for name in args.model:
        report = quantize_model(args.source, name, args.repository, args.data_dir or default_data_dir(), options,
                                version=args.version if len(args.model) == 1 else "")
        print(f"{report.source} -> {report.output} ({report.onnx_bytes} bytes, calibrated on "
              f"{sum(report.calibration.values())} training-split photos)")


def _run_train_detector(args: argparse.Namespace) -> None:
    _log_progress()
    from finprint_train.detector import train_detector

    train_detector(args.out, data_dir=args.data_dir, repository=args.repository, seed=args.seed, box_labels=args.box_labels, embedder_checkpoint=args.embedder_checkpoint)


def add_training_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add the model pipeline's subcommands to a CLI's subparsers."""
    train = subparsers.add_parser("train", help="fine-tune the embedder within a time budget")
    train.add_argument("--config", required=True, help="TOML file, or a name in finprint_train/configs")
    train.add_argument("--minutes", type=float, default=None, help="time budget; the schedule fits itself to it")
    train.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    train.add_argument("--init-checkpoint", type=Path, default=None, help="start from your own checkpoint")
    train.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<config name>)")
    train.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="decoded-photo cache (default: %(default)s)")
    _data_dir_arg(train)
    train.set_defaults(func=_run_train)

    evaluate = subparsers.add_parser("evaluate", help="MAP@5, top-k, species and rejection metrics vs baselines")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="a training checkpoint, evaluated offline with torch")
    source.add_argument("--api", metavar="URL", help="the running system's public API: enrol the protocol's "
                        "gallery, identify its queries, and compare with the model offline, stage by stage")
    evaluate.add_argument("--out", type=Path, default=None, help="folder for report.json, report.md and plots")
    evaluate.add_argument("--api-key", default=os.environ.get("FINPRINT_API_KEY"),
                          help="with --api: a contributor key of an organisation kept for evaluation")
    evaluate.add_argument("--repository", type=Path, default=Path("model_repository"),
                          help="with --api: the model repository the offline rows run (the API's own)")
    evaluate.add_argument("--split", choices=["test", "val"], default="test", help="with --api: whose individuals")
    evaluate.add_argument("--species", nargs="*", default=None, help="with --api: only these species")
    evaluate.add_argument("--queries-per-individual", type=int, default=4,
                          help="with --api: query photos of each individual (more: less noise)")
    evaluate.add_argument("--max-known", type=int, default=None,
                          help="with --api: at most this many known individuals per species (a quick run)")
    evaluate.add_argument("--concurrency", type=int, default=4, help="with --api: requests in flight")
    evaluate.add_argument("--tag", default="eval", help="with --api: prefix of the catalogue codes it creates")
    evaluate.add_argument("--no-baselines", action="store_true", help="skip the frozen-ImageNet and raw-pixel baselines")
    evaluate.add_argument("--image-size", type=int, default=None, help="input size (default: the run's final size)")
    _data_dir_arg(evaluate)
    evaluate.set_defaults(func=_run_evaluate)

    calibrate = subparsers.add_parser(
        "calibrate", help="choose a shipped embedder's new-individual thresholds on the validation individuals "
        "(onnxruntime, the matcher's scoring) and write them into its finprint.json")
    calibrate.add_argument("--repository", type=Path, default=Path("model_repository"))
    calibrate.add_argument("--centroid-weight", type=float, default=None,
                           help="how the matcher scores individuals (default: the evaluation's, 0.5)")
    calibrate.add_argument("--dry-run", action="store_true", help="print the thresholds, leave the card")
    calibrate.add_argument("--out", type=Path, default=None,
                           help="folder for calibration.json, report.md and reliability.png (test protocol)")
    _data_dir_arg(calibrate)
    calibrate.set_defaults(func=_run_calibrate)

    export = subparsers.add_parser("export", help="write the embedder as a Triton/onnxruntime model")
    export.add_argument("--checkpoint", type=Path, required=True)
    export.add_argument("--repository", type=Path, default=Path("model_repository"))
    export.add_argument("--report", type=Path, default=None, help="report.json of `evaluate` (metrics, threshold)")
    export.add_argument("--max-batch-size", type=int, default=32)
    export.add_argument("--image-size", type=int, default=None,
                        help="input size (default: the run's final size; evaluate at the same size)")
    export.set_defaults(func=_run_export)

    quantize = subparsers.add_parser(
        "quantize", help="static int8 quantization of a shipped ONNX model (onnxruntime), calibrated on "
        "training-split photos, as a new version folder in another repository")
    quantize.add_argument("--repository", type=Path, required=True,
                          help="where the int8 version goes (<repository>/<model>/<N>/); not the shipped one")
    quantize.add_argument("--source", type=Path, default=Path("model_repository"), help="the fp32 models' repository")
    quantize.add_argument("--model", nargs="+", default=["finprint_embedder", "finprint_detector"],
                          choices=["finprint_embedder", "finprint_detector"])
    quantize.add_argument("--version", default="", help="source version (default: the highest)")
    quantize.add_argument("--format", choices=["qdq", "qoperator"], default="qdq")
    quantize.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor, not per channel")
    quantize.add_argument("--calibration-photos", type=int, default=256)
    quantize.add_argument("--calibration-method", choices=["minmax", "entropy", "percentile"], default="minmax")
    quantize.add_argument("--exclude-first", action="store_true", help="keep the stem convolution in float")
    quantize.add_argument("--exclude-last", action="store_true", help="keep the last convolution in float")
    quantize.add_argument("--seed", type=int, default=0, help="which training-split photos calibrate")
    _data_dir_arg(quantize)
    quantize.set_defaults(func=_run_quantize)

    detector = subparsers.add_parser("train-detector", help="train, evaluate and export the detector heads")
    detector.add_argument("--out", type=Path, required=True, help="folder for features, report and plots")
    detector.add_argument("--repository", type=Path, default=Path("model_repository"))
    detector.add_argument("--seed", type=int, default=0)
    detector.add_argument("--embedder-checkpoint", type=Path, default=None, help="use this embedder's fine-tuned backbone instead of ImageNet's")
    detector.add_argument("--box-labels", type=Path, default=DEFAULT_BOX_LABELS if DEFAULT_BOX_LABELS.exists() else None, help="hand-labelled boxes CSV (default: %(default)s)")
    _data_dir_arg(detector)
    detector.set_defaults(func=_run_train_detector)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="finprint-training")
    add_training_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
