"""``dw-replay``: replay a recording through a GNU Radio flowgraph and print (and plot) what came out.

    dw-replay [RECORDING] [--datatype cu8 --rate 2.4e6 --freq 433.92e6] [--plot out.png] [--json out.json]

The flowgraph is ``sigmf_source -> summary sink``: the summary counts the samples and tags that actually flowed,
so the printed "samples out" is a check of the source, not a copy of the metadata.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pmt
from gnuradio import gr

from diffwireless.errors import RecordingError
from diffwireless.paths import bundled_recording
from diffwireless.summary import IQSummary

from gnuradio.diffwireless.sigmf_source import sigmf_source
from gnuradio.diffwireless.apps._report import write_json


class _summary_sink(gr.sync_block):
    """Feeds every sample and tag it receives to an :class:`IQSummary`."""

    def __init__(self, summary: IQSummary) -> None:
        gr.sync_block.__init__(self, name="diffwireless_summary_sink", in_sig=[np.complex64], out_sig=None)
        self.summary = summary

    def work(self, input_items, output_items):
        samples = input_items[0]
        for tag in self.get_tags_in_window(0, 0, len(samples)):
            self.summary.count_tag(pmt.symbol_to_string(tag.key))
        self.summary.update(samples)
        return len(samples)


def replay(path: str, datatype: str = "", sample_rate: float = 0.0, frequency: float = 0.0) -> tuple[sigmf_source,
                                                                                                    IQSummary]:
    """Run ``path`` through ``sigmf_source`` to the end; returns the source (its recording) and the summary."""
    source = sigmf_source(path, datatype=datatype, sample_rate=sample_rate, frequency=frequency)
    summary = IQSummary(sample_rate=source.sample_rate)
    sink = _summary_sink(summary)
    tb = gr.top_block("dw_replay")
    tb.connect(source, sink)
    tb.run()
    return source, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dw-replay", description=__doc__.split("\n\n")[0])
    parser.add_argument("recording", nargs="?", default=None,
                        help="SigMF .sigmf-meta/.sigmf-data/base name, or a raw file with --datatype "
                             "(default: the bundled demo recording)")
    parser.add_argument("--datatype", default="", help="raw file format (cf32_le, ci16_le, cu8, ...); omit for SigMF")
    parser.add_argument("--rate", type=float, default=0.0, help="raw: sample rate; SigMF: override (S/s)")
    parser.add_argument("--freq", type=float, default=0.0, help="raw: centre frequency (Hz)")
    parser.add_argument("--plot", help="write a PNG of the spectrum and envelope here")
    parser.add_argument("--json", help="write the summary as JSON here")
    args = parser.parse_args(argv)
    if args.recording is None:
        args.recording = bundled_recording()
    try:
        source, summary = replay(args.recording, args.datatype, args.rate, args.freq)
    except (RecordingError, ValueError) as exc:
        print(f"dw-replay: error: {exc}", file=sys.stderr)
        return 2
    rec = source.recording
    report = summary.report()
    print(rec.summary_line())
    if rec.description:
        print(f"  description: {rec.description}")
    for cap in rec.captures:
        freq = f"{cap.frequency_hz / 1e6:.6g} MHz" if cap.frequency_hz is not None else "frequency unknown"
        print(f"  capture at sample {cap.sample_start}: {freq}" + (f", {cap.datetime}" if cap.datetime else ""))
    for ann in rec.annotations[:10]:
        print(f"  annotation at sample {ann.sample_start} (+{ann.sample_count}): {ann.label or ''} "
              f"{ann.fields.get('core:comment', '')}".rstrip())
    if len(rec.annotations) > 10:
        print(f"  ... {len(rec.annotations) - 10} more annotations")
    lossless = report["num_samples"] == rec.num_samples
    print(f"replayed through GNU Radio: {report['num_samples']} samples out of {rec.num_samples} in "
          f"({'lossless' if lossless else 'MISMATCH'})")
    for key, value in report.items():
        if key != "num_samples":
            print(f"  {key}: {value}")
    if args.plot:
        summary.plot(args.plot, title=rec.path.name)
        print(f"plot: {args.plot}")
    if args.json:
        write_json(args.json, {"recording": str(rec.path), "samples_in": rec.num_samples, **report})
        print(f"json: {args.json}")
    return 0 if lossless else 1


if __name__ == "__main__":
    sys.exit(main())
