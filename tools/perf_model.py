#!/usr/bin/env python3
"""Alpha-beta performance model of a Tessera training step (docs/scaling.md).

step = compute + tensor-parallel collectives + the exposed part of the data-parallel gradient
reduction + a few scalar collectives. Plain Python 3, no third-party module.

- Compute: the replica's model FLOPs (src/model/flop_count.cc) at a per-rank rate, either measured
  (a one-rank run) or assumed (a GPU's peak x achieved fraction). Tensor parallelism divides the
  share `split` of that time (the matrix products and what runs on local heads / d_ff / vocabulary)
  by tp; the rest (layer norms, residuals, dropout on [tokens, d]) is replicated on every tp rank.
- Collectives: ring algorithms, a message of n bytes over p ranks costs
      all_reduce:                    2(p-1) alpha + 2(p-1)/p n beta
      all_gather, reduce_scatter:     (p-1) alpha +  (p-1)/p n beta   (n = all ranks' data)
  with alpha (latency per ring step, s) and beta (s per byte) fitted to tessera-bench-collectives;
  across nodes (ClusterNetwork) the bandwidth is the slower of NVLink and the node's NICs, and the
  latency a ring inside the node plus NCCL's double binary tree across nodes (2 log2(nodes) steps).
- Tensor parallelism (counted from src/model/*.cc and parallel/*.cc), per micro-batch, each an
  all-reduce of f32 activations [positions, d_model] over the tp group, blocking (fully exposed):
      source side: 1 (embedding) + 2 per encoder layer forward + 2 backward + 1 (memory gradient)
      target side: 1 (embedding) + 3 per decoder layer forward + 3 backward + 1 (output projection)
  plus the vocabulary-parallel cross-entropy: an all-gather of 2 f64 per target position and rank
  (argmax), an all-reduce of 1 f32 (max) and one of 3 f32 (sums) per target position.
- Data parallelism: the f32 gradient of the rank's parameters (split ones / tp + replicated ones)
  in buckets of >= bucket_mb, cut from the end of the parameter list (parallel/gradient_buckets.cc).
  A bucket starts when backward has finished its parameters (backward time spread over the
  output projection and the layers in proportion to their FLOPs; the tied embedding is last);
  buckets are reduced one after another; what runs past the end of backward is exposed.
- Scalars per step: a dp all-reduce of the loss totals, a tp all-reduce of the gradient norm and
  a world all-reduce of the stop flags (src/train/trainer.cc, optimizer.cc, training_run.cc).
These counts were checked against the MPI calls of real runs (docs/scaling.md, "Counting").

    python3 tools/perf_model.py fit bench-2.txt bench-4.txt     # alpha, beta per collective
    python3 tools/perf_model.py predict --config configs/base.cfg --tp 8 --dp 128   # H100 cluster
    python3 tools/perf_model.py project --config configs/big.cfg --global-tokens 524288 --plot big.png
"""
import argparse
import json
import math
import re
from dataclasses import dataclass, field

def ring_factors(kind, p):
    """(latency steps, bandwidth factor) of a ring collective over p ranks."""
    if p <= 1:
        return 0.0, 0.0
    if kind == "all_reduce":
        return 2.0 * (p - 1), 2.0 * (p - 1) / p
    return float(p - 1), (p - 1) / p


# ---- the model's shape, from tessera-train config files -------------------------------------

def read_config(paths):
    """Merged key = value options of config files (later files override earlier ones)."""
    options = {}
    for path in paths:
        with open(path) as f:
            options.update(parse_config_text(f.read()))
    return options


def parse_config_text(text):
    options = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" in line:
            key, value = (s.strip() for s in line.split("=", 1))
            options[key] = value
    return options


@dataclass
class Model:
    vocab: int = 8000
    d: int = 512
    ff: int = 2048
    heads: int = 8
    enc: int = 6
    dec: int = 6
    pre_ln: bool = False

    @staticmethod
    def from_options(o):
        def num(key, default):
            return int(float(o.get(key, default)))
        return Model(num("vocab-size", 8000), num("d-model", 512), num("d-ff", 2048), num("heads", 8),
                     num("encoder-layers", 6), num("decoder-layers", 6),
                     str(o.get("pre-ln", "false")).lower() in ("true", "1", "yes"))

    def tensors(self, tp):
        """Per-rank parameter tensors in store order (src/model/*.cc constructors): a list of
        (layer, elements); layers are "embedding", "encoder.<i>", "encoder.final_norm",
        "decoder.<i>", "decoder.final_norm"."""
        d, ff = self.d, self.ff
        vocab = -(-self.vocab // tp) * tp
        # column-parallel: weight and bias split; row-parallel: weight split, bias replicated
        attention = [d * d // tp, d // tp] * 3 + [d * d // tp, d]
        norm = [d, d]
        ffn = [d * ff // tp, ff // tp, ff * d // tp, d]
        out = [("embedding", vocab * d // tp)]
        for i in range(self.enc):
            out += [("encoder.%d" % i, n) for n in attention + norm + ffn + norm]
        if self.pre_ln:
            out += [("encoder.final_norm", n) for n in norm]
        for i in range(self.dec):
            out += [("decoder.%d" % i, n) for n in attention + norm + attention + norm + ffn + norm]
        if self.pre_ln:
            out += [("decoder.final_norm", n) for n in norm]
        return out

    def layers_params(self, tp):
        """Per-rank parameter elements of each layer, in store order: [(layer, elements)]."""
        out = []
        for layer, n in self.tensors(tp):
            if out and out[-1][0] == layer:
                out[-1] = (layer, out[-1][1] + n)
            else:
                out.append((layer, n))
        return out

    def parameters(self):
        """The whole model's parameters (ModelConfig::parameter_count at tp 1)."""
        return sum(n for _, n in self.layers_params(1))


def forward_flops(m, s, t):
    """Forward FLOPs of one sentence pair of s source and t target positions (flop_count.cc)."""
    d, linear, ffn = m.d, 2.0 * m.d * m.d, 4.0 * m.d * m.ff
    encoder = 4 * s * linear + 4 * s * s * d + s * ffn
    decoder = 4 * t * linear + 4 * t * t * d + 2 * t * linear + 2 * s * linear + 4 * t * s * d + t * ffn
    return m.enc * encoder + m.dec * decoder + 2.0 * t * d * m.vocab


@dataclass
class Batch:
    """One micro-batch of one replica: sentences of src and tgt positions (eos/bos included)."""
    sentences: float
    src: float
    tgt: float

    @property
    def tokens(self):
        return self.sentences * (self.src + self.tgt)

    def flops(self, m):
        return 3.0 * self.sentences * forward_flops(m, self.src, self.tgt)


# ---- collectives: fitting and timing --------------------------------------------------------

def parse_bench(text):
    """Rows (kind, ranks, bytes, seconds) of a tessera-bench-collectives output: the host table
    (size count type time algbw busbw, then the plain MPI call's time, busbw and the time ratio
    since those columns were added) or the NCCL one (in-place time where there is one)."""
    rows, kind, ranks = [], None, None
    for line in text.splitlines():
        head = re.match(r"#\s*(all_reduce|all_gather|reduce_scatter) on (\d+) ranks", line)
        if head:
            kind, ranks = head.group(1), int(head.group(2))
            continue
        fields = line.split()
        if kind is None or not fields or not fields[0].isdigit():
            continue
        if len(fields) in (6, 9):
            micros = float(fields[3])
        elif len(fields) == 12:
            micros = float(fields[8] if fields[8] != "n/a" else fields[4])
        else:
            continue
        rows.append((kind, ranks, int(fields[0]), micros * 1e-6))
    return rows


@dataclass
class Fit:
    kind: str
    ranks: int
    world: int           # ranks sharing the machine while it was measured (>= ranks)
    alpha: float         # s per ring step
    beta: float          # s per byte
    points: int = 0
    worst_error: float = 0.0   # largest |model - measured| / measured over the fitted points

    def seconds(self, nbytes, p=None):
        a, b = ring_factors(self.kind, p or self.ranks)
        return a * self.alpha + b * nbytes * self.beta


def fit_alpha_beta(rows, kind, ranks, world=None, min_bytes=0):
    """Least squares of the ring model in relative error (every size weighs the same), on the
    fastest time of each size when a size was measured more than once (repeated benchmarks: on a
    shared machine the slower repeats are other programs' time, not the collective's)."""
    best = {}
    for k, p, n, t in rows:
        if k == kind and p == ranks and n >= min_bytes and t > 0:
            best[n] = min(t, best.get(n, t))
    pts = sorted(best.items())
    if len(pts) < 2:
        raise ValueError("need at least 2 sizes of %s on %d ranks" % (kind, ranks))
    a, b = ring_factors(kind, ranks)
    # minimise sum ((a alpha + b n beta) / t - 1)^2: linear in (alpha, beta)
    s11 = sum((a / t) ** 2 for n, t in pts)
    s12 = sum((a / t) * (b * n / t) for n, t in pts)
    s22 = sum((b * n / t) ** 2 for n, t in pts)
    r1 = sum(a / t for n, t in pts)
    r2 = sum(b * n / t for n, t in pts)
    det = s11 * s22 - s12 * s12
    alpha = (r1 * s22 - r2 * s12) / det
    beta = (s11 * r2 - s12 * r1) / det
    if alpha < 0 or beta < 0:  # keep the model physical: refit the term alone
        alpha, beta = (0.0, r2 / s22) if alpha < 0 else (r1 / s11, 0.0)
    fit = Fit(kind, ranks, world or ranks, alpha, beta, len(pts))
    fit.worst_error = max(abs(fit.seconds(n) - t) / t for n, t in pts)
    return fit


def fit_bench_text(text, world=None, min_bytes=0):
    rows = parse_bench(text)
    keys = sorted({(k, p) for k, p, _, _ in rows})
    return [fit_alpha_beta(rows, k, p, world, min_bytes) for k, p in keys]


class MeasuredNetwork:
    """One machine, collectives timed by tessera-bench-collectives. A group of p ranks in a job
    of w ranks uses the fit of p ranks measured while w ranks shared the machine; failing that
    the fit of p ranks alone; failing that the fit with the nearest p (alpha and beta are per ring
    step, so in the model they do not depend on p)."""

    def __init__(self, fits):
        self.fits = fits

    def lookup(self, kind, p, world):
        same = [f for f in self.fits if f.kind == kind]
        if not same:
            raise ValueError("no fit for %s" % kind)
        for want in ((p, world), (p, p)):
            for f in same:
                if (f.ranks, f.world) == want:
                    return f
        return min(same, key=lambda f: (abs(f.ranks - p), abs(f.world - world)))

    def seconds(self, kind, nbytes, group):
        if group.size <= 1:
            return 0.0
        return self.lookup(kind, group.size, group.world).seconds(nbytes, group.size)


@dataclass
class Link:
    alpha: float   # s per ring step
    bandwidth: float   # bytes/s per direction, what a collective achieves (busbw)


class ClusterNetwork:
    """Nodes of `per_node` GPUs. Inside a node: a ring on the intra-node link. A group with g
    members on each of several nodes: NCCL pipelines the ring through NVLink and the NICs (one
    channel per NIC, every GPU with its own NIC), so the bus bandwidth is the slower of the
    intra-node link and the node's g NICs; latency is the ring steps inside the node plus a double
    binary tree across the nodes (2 log2(nodes) inter-node steps for an all-reduce)."""

    def __init__(self, intra, inter, per_node):
        self.intra, self.inter, self.per_node = intra, inter, per_node

    def seconds(self, kind, nbytes, group):
        p, g = group.size, min(group.size, group.per_node)
        if p <= 1:
            return 0.0
        nodes = p // g
        steps, share = ring_factors(kind, p)
        if nodes == 1:
            return steps * self.intra.alpha + share * nbytes / self.intra.bandwidth
        local_steps, _ = ring_factors(kind, g)
        tree_steps = (2 if kind == "all_reduce" else 1) * math.ceil(math.log2(nodes))
        bandwidth = min(self.intra.bandwidth, g * self.inter.bandwidth)
        return local_steps * self.intra.alpha + tree_steps * self.inter.alpha + share * nbytes / bandwidth


@dataclass
class Group:
    size: int
    per_node: int   # members of the group on one node
    world: int      # ranks of the whole job


# ---- the step --------------------------------------------------------------------------------

@dataclass
class Compute:
    """Per-rank compute: `flops_per_s` for a whole tp=1 step (model FLOPs / time), `split` the
    share of that time tensor parallelism divides, `slowdown` for ranks sharing cores."""
    flops_per_s: float
    split: float = 1.0
    slowdown: float = 1.0

    def seconds(self, flops, tp):
        return flops / self.flops_per_s * (self.split / tp + 1.0 - self.split) * self.slowdown


@dataclass
class Prediction:
    compute_s: float
    tp_comm_s: float
    dp_comm_s: float      # all buckets, back to back
    dp_exposed_s: float   # what runs past the end of backward
    scalar_s: float
    tokens: float         # per step, whole job
    collectives: dict = field(default_factory=dict)

    @property
    def comm_exposed_s(self):
        return self.tp_comm_s + self.dp_exposed_s + self.scalar_s

    @property
    def step_s(self):
        return self.compute_s + self.comm_exposed_s

    @property
    def tokens_per_s(self):
        return self.tokens / self.step_s


def tp_collectives(m, batch):
    """[(kind, bytes, count)] of one micro-batch's tensor-parallel collectives, bytes of all ranks'
    data for all_gather (the bench's size) and of the buffer for all_reduce; tp is applied by the
    caller for the all-gather."""
    ns, nt = batch.sentences * batch.src, batch.sentences * batch.tgt
    return [("all_reduce", 4.0 * ns * m.d, 4 * m.enc + 2),
            ("all_reduce", 4.0 * nt * m.d, 6 * m.dec + 2),
            ("all_gather", 16.0 * nt, 1),          # x tp ranks
            ("all_reduce", 4.0 * nt, 1),
            ("all_reduce", 12.0 * nt, 1)]


def gradient_buckets(m, tp, bucket_mb, dtype_bytes=4):
    """Bucket sizes in bytes in launch order, each with the index (in Model.layers_params) of
    the earliest layer it holds: a bucket is ready when backward has finished that layer. Buckets
    are cut from the end of the tensor list, each at least bucket_mb MiB (gradient_buckets.cc)."""
    tensors = m.tensors(tp)
    layer_index = {name: i for i, (name, _) in enumerate(m.layers_params(tp))}
    limit = bucket_mb * 1024 * 1024
    out, size = [], 0
    for i in range(len(tensors) - 1, -1, -1):
        size += tensors[i][1] * dtype_bytes
        if size >= limit or i == 0:
            out.append((size, layer_index[tensors[i][0]]))
            size = 0
    return out


def backward_finish_times(m, batch, backward_s):
    """When backward has finished each layer of Model.layers_params, in seconds from its start:
    the output projection first, then decoder layers and encoder layers from the last, the
    embedding at the very end (it is the tied output projection too)."""
    s, t = batch.src, batch.tgt
    d, linear, ffn = m.d, 2.0 * m.d * m.d, 4.0 * m.d * m.ff
    enc = 4 * s * linear + 4 * s * s * d + s * ffn
    dec = 6 * t * linear + 2 * s * linear + 4 * t * t * d + 4 * t * s * d + t * ffn
    logits = 2.0 * t * d * m.vocab
    total = logits + m.enc * enc + m.dec * dec
    names = [name for name, _ in m.layers_params(1)]
    done, clock = {}, logits
    for i in range(m.dec - 1, -1, -1):
        clock += dec
        done["decoder.%d" % i] = clock
    done["decoder.final_norm"] = logits
    done["encoder.final_norm"] = clock
    for i in range(m.enc - 1, -1, -1):
        clock += enc
        done["encoder.%d" % i] = clock
    done["embedding"] = total
    return [done[n] / total * backward_s for n in names]


def predict(m, tp, dp, batch, compute, network, per_node=None, world=None, accumulate=1, bucket_mb=4.0,
            tokens=None, flops=None):
    """One step of a (tp, dp) layout: `batch` is one micro-batch of one replica (its padded
    positions size the messages); `flops` the replica's model FLOPs per step (default: the
    batch's, times accumulate); `tokens` the tokens the step counts (default: the padded
    positions of every replica's batches)."""
    world = world or tp * dp
    per_node = per_node or world
    tp_group = Group(tp, min(tp, per_node), world)
    dp_group = Group(dp, max(1, per_node // tp), world)
    if flops is None:
        flops = batch.flops(m) * accumulate
    compute_s = compute.seconds(flops, tp)

    tp_s, counted = 0.0, {}
    if tp > 1:
        for kind, nbytes, count in tp_collectives(m, batch):
            if kind == "all_gather":
                nbytes *= tp
            tp_s += count * accumulate * network.seconds(kind, nbytes, tp_group)
            counted[kind] = counted.get(kind, 0) + count * accumulate

    dp_total = dp_exposed = 0.0
    if dp > 1:
        # the last micro-batch's backward: 2/3 of its compute and half of its tp collectives
        backward_s = (compute_s * 2.0 / 3.0 + tp_s / 2.0) / accumulate
        ready = backward_finish_times(m, batch, backward_s)
        clock = 0.0
        for nbytes, first_layer in gradient_buckets(m, tp, bucket_mb):
            t = network.seconds("all_reduce", nbytes, dp_group)
            clock = max(clock, ready[first_layer]) + t
            dp_total += t
        dp_exposed = max(0.0, clock - backward_s)

    scalar = 0.0
    if dp > 1:
        scalar += network.seconds("all_reduce", 24, dp_group)      # loss totals
    if tp > 1:
        scalar += network.seconds("all_reduce", 8, tp_group)       # gradient norm
    if world > 1:
        scalar += network.seconds("all_reduce", 24, Group(world, per_node, world))  # stop flags
    return Prediction(compute_s, tp_s, dp_total, dp_exposed, scalar,
                      tokens if tokens is not None else batch.tokens * dp * accumulate, counted)


# ---- an H100 cluster: the assumptions of docs/scaling.md ------------------------------------

H100 = {
    "peak_flops": 989.4e12,   # bf16 dense, H100 SXM5 datasheet
    "mfu": 0.30,              # assumed achieved share of that peak on a whole tp=1 step
    "split": 0.90,            # assumed share of the step's time that tensor parallelism divides
    "gpus_per_node": 8,
    "nvlink_bw": 360e9,       # NVLink 4: 450 GB/s per direction, 80% reached by NCCL (assumed)
    "nvlink_alpha": 1.0e-6,   # per ring step (assumed: ~15 us for a small all-reduce on 8 GPUs)
    "ib_bw": 40e9,            # 400 Gb/s NDR per GPU = 50 GB/s, 80% reached (assumed)
    "ib_alpha": 5.0e-6,       # per inter-node step (assumed)
}


def cluster_network(c):
    return ClusterNetwork(Link(c["nvlink_alpha"], c["nvlink_bw"]), Link(c["ib_alpha"], c["ib_bw"]),
                          c["gpus_per_node"])


def cluster_predict(m, tp, gpus, tokens_per_gpu, length, c=H100, bucket_mb=25.0):
    """A (tp, dp = gpus / tp) layout on the cluster, every GPU holding `tokens_per_gpu` padded
    source + target positions (a replica's batch is tp times that) of sentences of `length`."""
    dp = gpus // tp
    batch = Batch(tokens_per_gpu * tp / (2.0 * length), length, length)
    compute = Compute(c["peak_flops"] * c["mfu"], c["split"])
    return predict(m, tp, dp, batch, compute, cluster_network(c), per_node=min(gpus, c["gpus_per_node"]),
                   bucket_mb=bucket_mb)


# ---- command line ----------------------------------------------------------------------------

def cmd_fit(args):
    fits = []
    for path in args.bench:
        with open(path) as f:
            fits += fit_bench_text(f.read(), args.world, args.min_bytes)
    if args.json:
        print(json.dumps([f.__dict__ for f in fits], indent=1))
        return
    print("%-15s %5s %5s %12s %14s %10s %7s" % ("collective", "ranks", "world", "alpha (us)", "1/beta (GB/s)",
                                                 "worst err", "sizes"))
    for f in fits:
        print("%-15s %5d %5d %12.2f %14.3f %9.0f%% %7d" % (f.kind, f.ranks, f.world, f.alpha * 1e6,
                                                         1e-9 / f.beta if f.beta else float("inf"),
                                                         100 * f.worst_error, f.points))


def cluster_from_args(args):
    c = dict(H100)
    for key in c:
        v = getattr(args, key, None)
        if v is not None:
            c[key] = v
    c["gpus_per_node"] = int(c["gpus_per_node"])
    return c


def cmd_predict(args):
    m = Model.from_options(read_config(args.config))
    c = cluster_from_args(args)
    p = cluster_predict(m, args.tp, args.tp * args.dp, args.tokens_per_gpu, args.length, c, args.bucket_mb)
    one = cluster_predict(m, 1, 1, args.tokens_per_gpu, args.length, c, args.bucket_mb)
    gpus = args.tp * args.dp
    print("model: %d parameters (d %d, d_ff %d, %d heads, %d+%d layers, vocab %d)" %
          (m.parameters(), m.d, m.ff, m.heads, m.enc, m.dec, m.vocab))
    print("layout tp %d x dp %d = %d GPUs on %d node(s); %g padded tokens per GPU, sentences of %g" %
          (args.tp, args.dp, gpus, -(-gpus // c["gpus_per_node"]), args.tokens_per_gpu, args.length))
    for name, v in (("compute", p.compute_s), ("tensor-parallel collectives", p.tp_comm_s),
                    ("data-parallel all-reduce (all buckets)", p.dp_comm_s),
                    ("... exposed after backward", p.dp_exposed_s), ("scalar collectives", p.scalar_s),
                    ("step", p.step_s)):
        print("  %-40s %10.3f ms" % (name, v * 1e3))
    eff = p.tokens_per_s / (gpus * one.tokens_per_s)
    print("  tokens/s %.4g, per GPU %.4g; weak-scaling efficiency vs 1 GPU %.1f%%" %
          (p.tokens_per_s, p.tokens_per_s / gpus, 100 * eff))


def projection_rows(m, tps, gpu_counts, tokens_per_gpu=None, global_tokens=None, length=32, c=H100, bucket_mb=25.0):
    """[(gpus, tp, Prediction, efficiency)]: weak scaling (tokens_per_gpu) or strong scaling
    (global_tokens); efficiency is tokens/s per GPU against one GPU with the same per-GPU batch
    (weak) or with the whole global batch (strong)."""
    rows = []
    for gpus in gpu_counts:
        per_gpu = tokens_per_gpu if tokens_per_gpu else global_tokens / gpus
        base = cluster_predict(m, 1, 1, tokens_per_gpu or global_tokens, length, c, bucket_mb)
        for tp in tps:
            if gpus % tp or tp > gpus or m.heads % tp or m.ff % tp:
                continue
            p = cluster_predict(m, tp, gpus, per_gpu, length, c, bucket_mb)
            rows.append((gpus, tp, p, p.tokens_per_s / (gpus * base.tokens_per_s)))
    return rows


def plot_projection(panels, path):
    """PNG of efficiency against GPUs, one line per tp, one panel per (title, rows)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        print("perf_model: no plot (%s; on Debian: apt-get install python3-matplotlib)" % e)
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False, sharey=True)
    for ax, (title, rows) in zip(axes[0], panels):
        for tp in sorted({r[1] for r in rows}):
            pts = [(g, 100 * e) for g, t, _, e in rows if t == tp]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", markersize=3, label="tp %d" % tp)
        ax.set_xscale("log", base=2)
        ax.set_ylim(0, 105)
        ax.set_xlabel("GPUs")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("efficiency % (model)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print("wrote %s" % path)


def millions(v):
    return "%.3g" % (v / 1e6) if v < 1e9 else "%.0f" % (v / 1e6)


def print_projection(rows, tps, gpu_counts, per_node):
    print("| GPUs | nodes | " + " | ".join("tp %d: tokens/s (eff.)" % tp for tp in tps) + " |")
    print("|---:|---:|" + "---:|" * len(tps))
    for gpus in gpu_counts:
        cells = []
        for tp in tps:
            r = [row for row in rows if row[0] == gpus and row[1] == tp]
            cells.append("%sM (%.0f%%)" % (millions(r[0][2].tokens_per_s), 100 * r[0][3]) if r else "-")
        print("| %d | %d | %s |" % (gpus, -(-gpus // per_node), " | ".join(cells)))


def cmd_project(args):
    m = Model.from_options(read_config(args.config))
    c = cluster_from_args(args)
    name = args.title or " ".join(args.config)
    panels = [("%s: weak, %g tokens per GPU" % (name, args.tokens_per_gpu),
               projection_rows(m, args.tps, args.gpus, args.tokens_per_gpu, None, args.length, c, args.bucket_mb))]
    if args.global_tokens:
        panels.append(("%s: strong, %g tokens per step" % (name, args.global_tokens),
                       projection_rows(m, args.tps, args.gpus, None, args.global_tokens, args.length, c,
                                       args.bucket_mb)))
    for title, rows in panels:
        print("\n%s\n" % title)
        print_projection(rows, args.tps, args.gpus, c["gpus_per_node"])
    if args.plot:
        plot_projection(panels, args.plot)


def add_cluster_options(p):
    p.add_argument("--config", action="append", required=True, help="tessera-train config file(s)")
    p.add_argument("--tokens-per-gpu", type=float, default=6250.0,
                   help="padded source + target positions per GPU and step (default: the paper's 25k+25k on 8 GPUs)")
    p.add_argument("--length", type=float, default=32.0, help="padded positions per sentence, each side")
    p.add_argument("--bucket-mb", type=float, default=25.0, help="gradient bucket size (MiB)")
    for key, v in H100.items():
        p.add_argument("--" + key.replace("_", "-"), dest=key, type=float, default=None,
                       help="default %g" % v)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fit", help="fit alpha and beta to tessera-bench-collectives output")
    f.add_argument("bench", nargs="+")
    f.add_argument("--world", type=int, help="ranks that shared the machine while it was measured")
    f.add_argument("--min-bytes", type=int, default=0, help="fit only sizes of at least this many bytes")
    f.add_argument("--json", action="store_true")
    p = sub.add_parser("predict", help="one layout's step on a GPU cluster")
    add_cluster_options(p)
    p.add_argument("--tp", type=int, default=1)
    p.add_argument("--dp", type=int, default=1)
    j = sub.add_parser("project", help="a markdown table of tokens/s and efficiency over GPU counts and tp")
    add_cluster_options(j)
    j.add_argument("--tps", type=int, nargs="+", default=[1, 2, 4, 8])
    j.add_argument("--gpus", type=int, nargs="+", default=[8, 16, 32, 64, 128, 256, 512, 1024])
    j.add_argument("--global-tokens", type=float, help="also strong scaling at this global batch (tokens per step)")
    j.add_argument("--plot", help="also draw efficiency against GPUs into this PNG")
    j.add_argument("--title", help="the plot's title")
    args = ap.parse_args(argv)
    {"fit": cmd_fit, "predict": cmd_predict, "project": cmd_project}[args.command](args)


if __name__ == "__main__":
    main()
