#!/usr/bin/env python3
"""The table and plots of a scaling sweep (launch/scaling.sh), measured next to predicted.

    python3 tools/scaling_report.py SWEEP_DIR [--warmup 3] [--cores 2] [--plots DIR]

Reads SWEEP_DIR/<mode>-tp<T>-dp<D>/metrics.jsonl (mode: strong or weak) and the collective
benchmarks SWEEP_DIR/bench/p<P>-w<W>.txt (tessera-bench-collectives on P ranks while W ranks
shared the machine), writes SWEEP_DIR/scaling.md and, when matplotlib is installed, PNG plots.

Measured, per layout, over the "step" records after the first --warmup steps:
  tokens/s      (source + target tokens) / seconds of those steps
  speed-up      tokens/s over the 1-rank run of the same mode; efficiency = speed-up / ranks
  step, compute, exposed comm: means per step (world rank 0; comm = time blocked in collectives)
  others' cores: the cores other programs kept busy meanwhile (machine.txt; 0 on a quiet machine)
Predicted (tools/perf_model.py) from two calibration runs per mode (marked "cal.") and the
benchmark fits:
  compute = the run's model FLOPs per replica at the 1-rank rate; tensor parallelism divides the
  share of it measured on the smallest tp > 1 run with dp 1 and a core per rank (without one: the
  share the 1-rank run's products take at the matmul peak); when the job's threads outnumber the
  cores that other programs left (--cores minus others' cores), compute slows in proportion;
  communication = the counted collectives on the fitted alpha/beta; data time as the 1-rank
  run's, scaled by the global batch.
"""
import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perf_model as pm  # noqa: E402

RUN_DIR = re.compile(r"^(strong|weak)-tp(\d+)-dp(\d+)$")
BENCH_FILE = re.compile(r"^p(\d+)-w(\d+)\.txt$")


class Run:
    """One run's records: its start, and the step windows after warm-up."""

    def __init__(self, path, mode, warmup):
        self.path, self.mode = path, mode
        self.start, steps, self.end = None, [], None
        with open(os.path.join(path, "metrics.jsonl")) as f:
            for line in f:
                if not line.strip():
                    continue
                rec = json.loads(line)
                if rec.get("event") == "start":
                    self.start = rec
                elif rec.get("event") == "step":
                    steps.append(rec)
                elif rec.get("event") == "end":
                    self.end = rec
        if self.start is None:
            raise ValueError("%s: no start record" % path)
        # A record covers the steps since the previous one; keep those that start after warm-up.
        kept = [r for r in steps if r["step"] - r["steps"] >= warmup]
        if not kept:
            raise ValueError("%s: no step after %d warm-up steps (%d records)" % (path, warmup, len(steps)))
        self.steps = sum(r["steps"] for r in kept)
        seconds = [r["step_s"] * r["steps"] for r in kept]
        self.seconds = sum(seconds)
        self.tokens = sum(r["source_tokens"] + r["target_tokens"] for r in kept)
        self.source_tokens = sum(r["source_tokens"] for r in kept)
        self.target_tokens = sum(r["target_tokens"] for r in kept)
        self.flops = sum(r["model_flops_per_s"] * s for r, s in zip(kept, seconds))

        def mean(key):
            return sum(r[key] * r["steps"] for r in kept) / self.steps
        self.step_s, self.compute_s = mean("step_s"), mean("compute_s")
        self.comm_s, self.data_s = mean("comm_exposed_s"), mean("data_s")
        self.tp, self.dp, self.world = self.start["tp"], self.start["dp"], self.start["world"]
        self.threads = self.start.get("threads", 1)
        self.peak = self.start.get("peak_flops_per_rank", 0.0)
        self.others_cores = None  # cores other programs used during the run (launch/scaling.sh)
        machine = os.path.join(path, "machine.txt")
        if os.path.exists(machine):
            with open(machine) as f:
                values = dict(line.strip().split("=", 1) for line in f if "=" in line)
            self.others_cores = float(values.get("others_cores", "nan"))
        cfg = self.start.get("config", {})
        self.options = pm.parse_config_text(cfg) if isinstance(cfg, str) else {k: str(v) for k, v in cfg.items()}

    @property
    def tokens_per_s(self):
        return self.tokens / self.seconds

    @property
    def flops_per_step(self):
        return self.flops / self.steps

    @property
    def layout(self):
        return "%dx%d" % (self.tp, self.dp)


def load_runs(sweep, warmup):
    runs = []
    for name in sorted(os.listdir(sweep)):
        m = RUN_DIR.match(name)
        if m and os.path.exists(os.path.join(sweep, name, "metrics.jsonl")):
            runs.append(Run(os.path.join(sweep, name), m.group(1), warmup))
    return runs


def load_fits(bench_dir):
    """The alpha-beta fits, and the measured points [(fit, [(bytes, fastest seconds)])]."""
    fits, points = [], []
    if not os.path.isdir(bench_dir):
        return fits, points
    for name in sorted(os.listdir(bench_dir)):
        m = BENCH_FILE.match(name)
        if m:
            with open(os.path.join(bench_dir, name)) as f:
                text = f.read()
            rows = pm.parse_bench(text)
            for fit in pm.fit_bench_text(text, world=int(m.group(2))):
                best = {}
                for k, p, n, t in rows:
                    if k == fit.kind and p == fit.ranks:
                        best[n] = min(t, best.get(n, t))
                fits.append(fit)
                points.append((fit, sorted(best.items())))
    return fits, points


def padded_batch(run, accumulate):
    """One replica micro-batch's padded positions, from the options (they size the messages)."""
    o, dp = run.options, run.dp
    if o.get("task", "corpus") == "corpus":
        positions = float(o.get("max-tokens", 4096)) / dp / accumulate
        src = positions * run.source_tokens / run.tokens
        length = 16.0  # lengths weigh only the attention terms of the bucket timing
        return pm.Batch(positions / (2 * length), src / positions * 2 * length, (1 - src / positions) * 2 * length)
    padded = float(o.get("max-len", 12)) + 1  # eos after the source, bos before the target
    return pm.Batch(float(o.get("batch-sentences", 64)) / dp / accumulate, padded, padded)


def core_share(run, cores):
    """The share of a core each rank thread had: the cores other programs left, over the job's
    threads (at most 1). Ranks on GPUs compute on their own devices: 1."""
    if run.start.get("device", "cpu") != "cpu":
        return 1.0
    left = max(cores - (run.others_cores or 0.0), 0.25)
    return min(1.0, left / threads_per_node(run))


def threads_per_node(run):
    return run.world / max(1, run.start.get("hosts", 1)) * run.threads


class Calibration:
    """The two compute parameters of the model on this machine: the 1-rank rate (model FLOP/s of
    a rank with a core of its own) and the share of compute that tensor parallelism divides, from
    the smallest tp > 1 run with dp 1 whose ranks had a core each, else (a lower bound) from the
    time the 1-rank run's matrix products take at the measured matmul peak."""

    def __init__(self, one, group, cores):
        self.one = one
        self.rate = one.flops_per_step / (one.compute_s * core_share(one, cores))
        candidates = sorted((r for r in group if r.dp == 1 and r.tp > 1 and threads_per_node(r) <= cores),
                            key=lambda r: r.tp)
        self.tp_run = candidates[0] if candidates else None
        if self.tp_run:
            t = self.tp_run
            ratio = t.compute_s * core_share(t, cores) * self.rate / t.flops_per_step  # split/tp + 1 - split
            self.split = min(1.0, max(0.0, (1 - ratio) / (1 - 1.0 / t.tp)))
            self.source = "the compute of the tp %d x dp 1 run" % t.tp
        else:
            self.split = min(1.0, one.flops_per_step / (one.peak * one.compute_s)) if one.peak > 0 else 1.0
            self.source = "the time of the 1-rank run's products at the matmul peak (a lower bound)"

    def calibrates(self, run):
        return run is self.one or run is self.tp_run


def predict(run, cal, network, cores):
    """perf_model's prediction of `run` from the calibration of its mode."""
    m = pm.Model.from_options(run.options)
    accumulate = int(float(run.options.get("accumulate", 1)))
    compute = pm.Compute(cal.rate, cal.split, 1.0 / core_share(run, cores))
    p = pm.predict(m, run.tp, run.dp, padded_batch(run, accumulate), compute, network, accumulate=accumulate,
                   bucket_mb=float(run.options.get("bucket-mb", 4)), tokens=run.tokens / run.steps,
                   flops=run.flops_per_step / run.dp)
    one = cal.one
    data_s = one.data_s * (run.tokens / run.steps) / (one.tokens / one.steps)
    return p, data_s


def fmt_s(s):
    return "%.4f" % s if s < 10 else "%.2f" % s


def report(runs, fits, cores, warmup):
    network = pm.MeasuredNetwork(fits)
    lines, rows = [], []
    for mode in ("strong", "weak"):
        group = sorted((r for r in runs if r.mode == mode), key=lambda r: (r.world, -r.tp))
        ones = [r for r in group if r.world == 1]
        if not group:
            continue
        lines.append("### %s scaling" % mode)
        lines.append("")
        if not ones:
            lines += ["(no 1-rank run: no speed-up, efficiency or prediction)", ""]
        one = ones[0] if ones else None
        cal = Calibration(one, group, cores) if one else None
        lines.append("| layout tp x dp | ranks | tokens/s | speed-up | efficiency | step s | compute s | "
                     "exposed comm s | comm share | predicted step s | predicted compute s | "
                     "predicted comm s | error | others' cores |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in group:
            speedup = r.tokens_per_s / one.tokens_per_s if one else float("nan")
            pred = None
            if one and (fits or r.world == 1):
                p, data_s = predict(r, cal, network, cores)
                pred = (p.step_s + data_s, p.compute_s, p.comm_exposed_s, p)
            row = dict(mode=mode, layout=r.layout, tp=r.tp, dp=r.dp, world=r.world, tokens_per_s=r.tokens_per_s,
                       speedup=speedup, efficiency=speedup / r.world, step_s=r.step_s, compute_s=r.compute_s,
                       comm_s=r.comm_s, share=r.comm_s / r.step_s)
            cells = ["%s | %d | %.0f | %.2f | %.0f%% | %s | %s | %s | %.0f%%" % (
                r.layout, r.world, r.tokens_per_s, speedup, 100 * speedup / r.world, fmt_s(r.step_s),
                fmt_s(r.compute_s), fmt_s(r.comm_s), 100 * row["share"])]
            if pred:
                row.update(pred_step_s=pred[0], pred_compute_s=pred[1], pred_comm_s=pred[2],
                           error=pred[0] / r.step_s - 1, pred_tp_s=pred[3].tp_comm_s,
                           pred_dp_exposed_s=pred[3].dp_exposed_s, pred_dp_total_s=pred[3].dp_comm_s)
                cells.append("%s | %s | %s | %+.0f%%%s" % (fmt_s(pred[0]), fmt_s(pred[1]), fmt_s(pred[2]),
                                                          100 * row["error"], " (cal.)" if cal.calibrates(r) else ""))
            else:
                cells.append("- | - | - | -")
            cells.append("%.2f" % r.others_cores if r.others_cores is not None else "-")
            row["others_cores"] = r.others_cores
            lines.append("| " + " | ".join(cells) + " |")
            rows.append(row)
        lines.append("")
        if one:
            lines.append("Calibration (cal.): the 1-rank run, %d steps after %d of warm-up: %.4g model GFLOP per "
                         "step at %.4g GFLOP/s per rank with a core to itself (its matmul peak: %.4g GFLOP/s); "
                         "tensor parallelism divides %.0f%% of the compute, from %s." % (
                             one.steps, warmup, one.flops_per_step / 1e9, cal.rate / 1e9, one.peak / 1e9,
                             100 * cal.split, cal.source))
            lines.append("")
    return lines, rows


def fit_lines(fits):
    if not fits:
        return ["(no collective benchmarks found: communication not predicted)", ""]
    out = ["| collective | ranks | ranks on the machine | alpha (us) | 1/beta (GB/s) | worst error of the fit |",
           "|---|---:|---:|---:|---:|---:|"]
    for f in fits:
        out.append("| %s | %d | %d | %.1f | %.3f | %.0f%% |" % (f.kind, f.ranks, f.world, f.alpha * 1e6,
                                                              1e-9 / f.beta if f.beta else float("inf"),
                                                              100 * f.worst_error))
    return out + [""]


def save_figure(fig, title, path):
    """Titles, lays out, writes and closes `fig`; returns its path."""
    import matplotlib.pyplot as plt
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot(rows, out_dir, title, prefix="scaling-"):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        print("scaling_report: no plots (%s; on Debian: apt-get install python3-matplotlib)" % e)
        return []
    written = []
    modes = [m for m in ("strong", "weak") if any(r["mode"] == m for r in rows)]
    if not modes:
        return written
    fig, axes = plt.subplots(1, len(modes), figsize=(5.5 * len(modes), 4), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        rs = [r for r in rows if r["mode"] == mode]
        one = [r for r in rs if r["world"] == 1]
        for label, pick in (("tp only", lambda r: r["dp"] == 1), ("dp only", lambda r: r["tp"] == 1),
                            ("tp x dp", lambda r: r["tp"] > 1 and r["dp"] > 1)):
            pts = sorted((r["world"], r["tokens_per_s"]) for r in rs if pick(r) or r["world"] == 1)
            if len(pts) > 1 or (pts and label == "tp x dp"):
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=label)
            pred = sorted((r["world"], r["tokens_per_s"] * r["step_s"] / r["pred_step_s"])
                          for r in rs if (pick(r) or r["world"] == 1) and "pred_step_s" in r)
            if len(pred) > 1:
                ax.plot([p[0] for p in pred], [p[1] for p in pred], "x--", color=ax.lines[-1].get_color(),
                        alpha=0.6, label=label + " (model)")
        if one:
            worlds = sorted({r["world"] for r in rs})
            ax.plot(worlds, [one[0]["tokens_per_s"] * w for w in worlds], ":", color="gray", label="ideal")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("ranks")
        ax.set_ylabel("tokens/s")
        ax.set_title("%s scaling" % mode)
        ax.legend(fontsize=7)
    written.append(save_figure(fig, title, os.path.join(out_dir, prefix + "throughput.png")))

    fig, axes = plt.subplots(1, len(modes), figsize=(5.5 * len(modes), 4), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        rs = [r for r in rows if r["mode"] == mode]
        x = range(len(rs))
        w = 0.38
        ax.bar([i - w / 2 for i in x], [r["compute_s"] for r in rs], w, label="compute", color="tab:blue")
        ax.bar([i - w / 2 for i in x], [r["comm_s"] for r in rs], w, bottom=[r["compute_s"] for r in rs],
               label="exposed comm", color="tab:orange")
        if all("pred_step_s" in r for r in rs):
            ax.bar([i + w / 2 for i in x], [r["pred_compute_s"] for r in rs], w, label="model: compute",
                   color="tab:blue", alpha=0.45, hatch="//")
            ax.bar([i + w / 2 for i in x], [r["pred_comm_s"] for r in rs], w,
                   bottom=[r["pred_compute_s"] for r in rs], label="model: comm", color="tab:orange", alpha=0.45,
                   hatch="//")
        ax.set_xticks(list(x))
        ax.set_xticklabels(["%s\n(%d)" % (r["layout"], r["world"]) for r in rs], fontsize=8)
        ax.set_xlabel("tp x dp (ranks); left measured, right model")
        ax.set_ylabel("seconds per step")
        ax.set_title("%s scaling: where a step goes" % mode)
        ax.legend(fontsize=7)
    written.append(save_figure(fig, title, os.path.join(out_dir, prefix + "breakdown.png")))
    return written


def plot_fits(points, out_dir, title, prefix="scaling-"):
    """The benchmark's fastest time per size against the fitted ring model, per collective."""
    import matplotlib.pyplot as plt
    kinds = sorted({f.kind for f, _ in points})
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.6), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for fit, pts in points:
            if fit.kind != kind:
                continue
            label = "%d ranks (%d on the machine)" % (fit.ranks, fit.world)
            ax.plot([n for n, _ in pts], [t * 1e6 for _, t in pts], "o", markersize=3, label=label)
            ax.plot([n for n, _ in pts], [fit.seconds(n) * 1e6 for n, _ in pts], "-",
                    color=ax.lines[-1].get_color(), alpha=0.6)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("bytes (all ranks' data)")
        ax.set_ylabel("microseconds")
        ax.set_title("%s: measured (dots), fit (lines)" % kind, fontsize=9)
        ax.legend(fontsize=7)
    return save_figure(fig, title, os.path.join(out_dir, prefix + "collectives.png"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sweep", help="the sweep directory of launch/scaling.sh")
    ap.add_argument("--warmup", type=int, default=3, help="steps dropped at the start of every run")
    ap.add_argument("--cores", type=int, default=os.cpu_count(),
                    help="cores of a node the ranks shared (default: this machine's)")
    ap.add_argument("--bench", help="directory of p<P>-w<W>.txt benchmarks (default: SWEEP/bench)")
    ap.add_argument("--plots", help="directory for the PNG plots (default: SWEEP)")
    ap.add_argument("--plot-prefix", default="scaling-", help="start of the plot files' names")
    ap.add_argument("--title", default="", help="a line above the plots")
    ap.add_argument("--json", help="also write the rows as JSON here")
    args = ap.parse_args(argv)

    runs = load_runs(args.sweep, args.warmup)
    if not runs:
        sys.exit("scaling_report: no <mode>-tp<T>-dp<D>/metrics.jsonl under %s" % args.sweep)
    fits, points = load_fits(args.bench or os.path.join(args.sweep, "bench"))
    table, rows = report(runs, fits, args.cores, args.warmup)
    first = runs[0]
    o = first.options
    head = ["# Scaling sweep: %s" % os.path.basename(os.path.abspath(args.sweep)), "",
            "Model d_model %s, d_ff %s, %s heads, %s+%s layers, vocabulary %s (%d parameters); task %s; "
            "%d thread(s) per rank on %d cores; %s, %s." % (
                o.get("d-model"), o.get("d-ff"), o.get("heads"), o.get("encoder-layers"), o.get("decoder-layers"),
                o.get("vocab-size"), first.start.get("parameters", 0), o.get("task"), first.threads, args.cores,
                first.start.get("device", "cpu"), first.start.get("precision", "fp32")), ""]
    body = head + table + ["### Collectives: alpha-beta fits (ring model)", ""] + fit_lines(fits)
    out = os.path.join(args.sweep, "scaling.md")
    with open(out, "w") as f:
        f.write("\n".join(body))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    plots = plot(rows, args.plots or args.sweep, args.title, args.plot_prefix)
    if plots and points:
        plots.append(plot_fits(points, args.plots or args.sweep, args.title, args.plot_prefix))
    print("\n".join(body))
    print("wrote %s%s" % (out, "".join(", " + p for p in plots)))


if __name__ == "__main__":
    main()
