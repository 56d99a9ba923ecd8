#!/usr/bin/env python3
"""Prints the scalars of a TensorBoard run directory as TensorBoard's Python loaders read them.

    read_tensorboard.py DIR [--expect TAG=STEP:VALUE,STEP:VALUE,... ...]

Loads DIR as one run (its event files in name order) and prints one line per point, as
tensorboard's EventAccumulator reads it: tag, step, wall time and value, tab-separated. With
--expect, each tag named must hold exactly those (step, value) points in that order, values
compared as float32 (the precision TensorBoard stores), and no other scalar tag may appear, for
both Python loaders: EventAccumulator, and plugin_event_accumulator, which `tensorboard
--load_fast=false` serves from. Both purge a resumed run's orphaned points at its SessionLog START
event, but the second ignores a run's first START. Exits 1 on a mismatch, 77 (skipped) when the
tensorboard package is missing.
"""
import argparse
import struct
import sys

try:
    from tensorboard.backend.event_processing import event_accumulator, plugin_event_accumulator
    from tensorboard.util import tensor_util
except ImportError as e:
    print(f"SKIP: {e} (pip install tensorboard)")
    sys.exit(77)


def float32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def event_accumulator_scalars(run_dir):
    """tag -> [(step, wall_time, value)], from EventAccumulator's scalars."""
    # size_guidance 0: keep every point (the default samples 10000 per tag).
    acc = event_accumulator.EventAccumulator(run_dir, size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return {tag: [(e.step, e.wall_time, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def plugin_accumulator_scalars(run_dir):
    """The same from plugin_event_accumulator, which keeps scalars as tensors."""
    acc = plugin_event_accumulator.EventAccumulator(run_dir, size_guidance={plugin_event_accumulator.TENSORS: 0})
    acc.Reload()
    return {tag: [(e.step, e.wall_time, tensor_util.make_ndarray(e.tensor_proto).item()) for e in acc.Tensors(tag)]
            for tag in acc.Tags()["tensors"]}


def parse_expect(specs):
    """['train/loss=1:2.5,2:2.25'] -> {'train/loss': [(1, 2.5), (2, 2.25)]}"""
    expected = {}
    for spec in specs:
        tag, _, points = spec.rpartition("=")
        expected[tag] = [(int(s), float32(float(v))) for s, v in (p.split(":") for p in points.split(","))]
    return expected


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("--expect", nargs="+", default=[], metavar="TAG=STEP:VALUE,...")
    args = parser.parse_args()

    scalars = event_accumulator_scalars(args.dir)
    for tag in sorted(scalars):
        for step, wall_time, value in scalars[tag]:
            print(f"{tag}\t{step}\t{wall_time:.17g}\t{value!r}")
    if not args.expect:
        return 0

    expected = parse_expect(args.expect)
    errors = []
    for loader, read in (("EventAccumulator", scalars), ("plugin_event_accumulator", plugin_accumulator_scalars(args.dir))):
        points = {tag: [(step, value) for step, _, value in series] for tag, series in read.items()}
        errors += [f"{loader}, tag {tag}: expected {expected.get(tag)}, read {points.get(tag)}"
                   for tag in sorted(set(expected) | set(points)) if expected.get(tag) != points.get(tag)]
    for e in errors:
        print("MISMATCH " + e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
