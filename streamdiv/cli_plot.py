"""``streamdiv plot``: a picture of a saved state or of a JSON report, as PNG or SVG (:mod:`streamdiv.plots`)."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from . import plots
from .accumulator import Accumulator
from .errors import StreamdivError
from .formats import write_atomically
from .state_format import MAGIC

PICTURE_FORMATS = {".png": plots.png, ".svg": plots.svg}


@click.command("plot")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The picture to write (atomically): FILE.png or FILE.svg, the format from its suffix.")
@click.option("--kind", type=click.Choice(plots.KINDS), help="What to draw: the reliability diagram, class-wise "
              "reliability, a metric over the time windows, or drift [default: drift for a drift report, else "
              "reliability].")
@click.option("--metric", metavar="NAME", help="With --kind series: the metric or drift figure to follow, e.g. "
              "ece, cross_entropy, confidence_psi [default: ece; confidence_psi for a drift report].")
@click.option("--max-classes", type=click.IntRange(1), metavar="N",
              help="With --kind classwise: draw the N most frequent classes [default: 12].")
def plot_command(source: str, output: str, kind: str | None, metric: str | None, max_classes: int | None) -> None:
    """Draw a saved state (from --save-state) or a JSON report written by streamdiv (score, merge or drift with
    --format json) as a PNG or SVG picture; needs the extra streamdiv[plot] (matplotlib).

    \b
    Example:
        streamdiv score preds.parquet --probs probs --labels label --save-state run.state
        streamdiv plot run.state -o reliability.png
        streamdiv plot run.state -o classes.svg --kind classwise --max-classes 6
        streamdiv plot week.json -o ece.png --kind series --metric ece
        streamdiv drift --reference reference.state today.parquet --probs probs --format json -o drift.json
        streamdiv plot drift.json -o drift.png
    """
    render = PICTURE_FORMATS.get(os.path.splitext(output)[1].lower())
    if render is None:
        raise click.BadParameter(f"write a .png or .svg file, not {os.path.basename(output)!r}",
                                 param_hint="-o/--output")
    data = _report_data(source)
    drift_report = "smoothing" in data and isinstance(data.get("reference"), dict)
    kind = kind or ("drift" if drift_report else "reliability")
    options: dict[str, Any] = {}
    if metric is not None or kind == "series":
        if kind != "series":
            raise click.UsageError(f"--metric goes with --kind series, not --kind {kind}")
        options["metric"] = metric or ("confidence_psi" if drift_report else "ece")
    if max_classes is not None:
        if kind != "classwise":
            raise click.UsageError(f"--max-classes goes with --kind classwise, not --kind {kind}")
        options["max_classes"] = max_classes
    picture = render(plots.plot(data, kind, **options))
    write_atomically(output, picture if isinstance(picture, bytes) else picture.encode("utf-8"))


def _report_data(source: str) -> dict[str, Any]:
    """A saved state's report data, or a JSON report's, named by the file it came from when it is neither."""
    with open(source, "rb") as handle:
        content = handle.read()
    if content.startswith(MAGIC):
        try:
            return Accumulator.from_bytes(content).report().to_dict()
        except StreamdivError as error:
            raise type(error)(f"{source}: {error}") from error
    try:
        data = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError):
        data = None
    if not isinstance(data, dict) or "metrics" not in data:
        raise StreamdivError(f"{source} is neither a saved state (--save-state) nor a JSON report written by "
                             f"streamdiv (score, merge or drift with --format json, one report per file)")
    return data
