#!/usr/bin/env python3
"""Plots the learning curves and the speed of one or more training runs from their metrics.jsonl.

    plot_run.py OUT.png RUN_DIR [RUN_DIR ...]

Four panels: training loss (and dev loss) by step, dev BLEU or greedy accuracy by step, tokens/s
by step, and the mean step time split into data, compute, exposed communication and checkpoint
(stacked bars, one per run). RUN_DIR is a tessera-train --out-dir (docs/metrics.md). Needs
matplotlib; exits 77 (skipped) without it.
"""
import json
import os
import sys

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError as e:
    print(f"SKIP: {e} (pip install matplotlib)")
    sys.exit(77)


def read_run(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    by_event = {}
    for r in records:
        by_event.setdefault(r["event"], []).append(r)
    return by_event


def label_of(run_dir, run):
    start = run["start"][-1]
    return f"{os.path.basename(os.path.normpath(run_dir))} (tp {start['tp']} x dp {start['dp']})"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out, run_dirs = sys.argv[1], sys.argv[2:]
    fig, ((loss_ax, quality_ax), (speed_ax, split_ax)) = plt.subplots(2, 2, figsize=(12, 8))
    split_parts = [("data_s", "data"), ("compute_s", "compute"), ("comm_exposed_s", "exposed communication"),
                   ("checkpoint_s", "checkpoint")]
    bottoms = [0.0] * len(run_dirs)
    split = {key: [] for key, _ in split_parts}
    labels = []
    for run_dir in run_dirs:
        run = read_run(run_dir)
        label = label_of(run_dir, run)
        labels.append(label)
        steps = run.get("step", [])
        loss_ax.plot([r["step"] for r in steps], [r["loss"] for r in steps], label=f"{label} train")
        valid = run.get("valid", [])
        if valid:
            loss_ax.plot([r["step"] for r in valid], [r["loss"] for r in valid], "o--", label=f"{label} dev")
            quality = "bleu" if "bleu" in valid[0] else "greedy_accuracy"
            quality_ax.plot([r["step"] for r in valid], [r[quality] for r in valid], "o-", label=label)
            quality_ax.set_ylabel("dev greedy BLEU" if quality == "bleu" else "dev greedy token accuracy")
        speed_ax.plot([r["step"] for r in steps], [r["tokens_per_s"] for r in steps], label=label)
        # The mean over the run, each window weighted by its steps.
        total_steps = sum(r["steps"] for r in steps) or 1
        for key, _ in split_parts:
            split[key].append(sum(r[key] * r["steps"] for r in steps) / total_steps)
    for key, name in split_parts:
        split_ax.bar(range(len(run_dirs)), split[key], bottom=bottoms, label=name)
        bottoms = [b + v for b, v in zip(bottoms, split[key])]
    split_ax.set_xticks(range(len(run_dirs)), labels, rotation=15, fontsize=8)
    split_ax.set_ylabel("seconds per step (mean)")
    split_ax.set_title("where a step's time goes (world rank 0)")
    loss_ax.set(xlabel="step", ylabel="label-smoothed loss per target token", title="loss")
    quality_ax.set(xlabel="step", title="dev quality")
    speed_ax.set(xlabel="step", ylabel="source + target tokens / s", title="throughput")
    for ax in (loss_ax, quality_ax, speed_ax, split_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
