#!/usr/bin/env python3
"""Unit tests of tools/perf_model.py (plain Python 3, no third-party module):

- the alpha-beta fit recovers known alpha and beta from a synthetic tessera-bench-collectives
  table (host and NCCL formats), exactly without noise and within 2% with +-5% noise;
- the parameter count is ModelConfig::parameter_count's for every preset;
- the tensor-parallel collectives are those counted in docs/parallelism.md;
- gradient buckets tile the rank's gradient; one node's cluster network is the plain ring.

    python3 tests/e2e/perf_model_test.py [-v]
"""
import os
import random
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import perf_model as pm  # noqa: E402


def host_table(kind, p, alpha, beta, noise=0.0, rng=None):
    """What tessera-bench-collectives --device cpu prints for one collective (sizes 8 B .. 64 MiB):
    Tessera's columns, then the plain MPI call's (here half Tessera's time), which the fit ignores."""
    lines = ["", "# %s on %d ranks, op sum; size = the largest buffer (all ranks' data); mpi = the plain" % (kind, p),
             "# MPI call on the same buffers in the same run; time ratio = Tessera's time / MPI's",
             "%14s %12s %6s %12s %12s %12s %12s %12s %11s" % ("size(B)", "count", "type", "time(us)", "algbw(GB/s)",
                                                            "busbw(GB/s)", "mpi(us)", "mpi busbw", "time ratio")]
    size = 8
    while size <= 64 << 20:
        lat, bw = pm.ring_factors(kind, p)
        t = (lat * alpha + bw * size * beta) * (1 + (rng.uniform(-noise, noise) if noise else 0))
        lines.append("%14d %12d %6s %12.1f %12.3f %12.3f %12.1f %12.3f %10.2fx" % (
            size, size // 4, "f32", t * 1e6, size / t / 1e9, size / t / 1e9 * bw, t / 2 * 1e6, 2 * size / t / 1e9 * bw,
            2.0))
        size *= 4
    return "\n".join(lines)


class FitTest(unittest.TestCase):
    KNOWN = {("all_reduce", 2): (3e-6, 1 / 8e9), ("all_gather", 2): (2e-6, 1 / 5e9),
             ("reduce_scatter", 2): (4e-6, 1 / 3e9), ("all_reduce", 4): (20e-6, 1 / 1e9)}

    def table(self, noise=0.0):
        rng = random.Random(int(os.environ.get("TESSERA_TEST_SEED", "1")))
        text = "# memcpy, 1 core, 256 MB: 9.60 GB/s copied (the limit for busbw of shared-memory transfers)\n"
        return text + "\n".join(host_table(k, p, a, b, noise, rng) for (k, p), (a, b) in self.KNOWN.items())

    def check(self, fits, tolerance):
        self.assertEqual(len(fits), len(self.KNOWN))
        for f in fits:
            alpha, beta = self.KNOWN[(f.kind, f.ranks)]
            self.assertLess(abs(f.alpha / alpha - 1), tolerance, (f.kind, f.ranks, f.alpha, alpha))
            self.assertLess(abs(f.beta / beta - 1), tolerance, (f.kind, f.ranks, f.beta, beta))

    def test_recovers_alpha_beta_exactly(self):
        # the table rounds times to 0.1 us; the smallest (latency) times are a few us
        self.check(pm.fit_bench_text(self.table()), 0.02)

    def test_recovers_alpha_beta_with_noise(self):
        self.check(pm.fit_bench_text(self.table(noise=0.05)), 0.05)

    def test_reads_the_nccl_table(self):
        text = ("# all_reduce on 8 ranks (one GPU each) over NCCL; size = the largest buffer (all ranks' data)\n"
                "#                                                                out-of-place                          in-place\n"
                "       size(B)        count  type  redop   time(us)    algbw    busbw  #wrong   time(us)    algbw    busbw  #wrong\n")
        alpha, beta = 1e-6, 1 / 300e9
        size = 1024
        while size <= 1 << 30:
            t = 14 * alpha + 1.75 * size * beta
            text += "%14d %12d %5s %6s %10s %8s %8s %7s %10.1f %8.2f %8.2f %7d\n" % (
                size, size // 4, "f32", "sum", "n/a", "n/a", "n/a", "n/a", t * 1e6, size / t / 1e9,
                1.75 * size / t / 1e9, 0)
            size *= 4
        fits = pm.fit_bench_text(text)
        self.assertEqual([(f.kind, f.ranks) for f in fits], [("all_reduce", 8)])
        self.assertLess(abs(fits[0].beta * 300e9 - 1), 0.01)
        self.assertLess(abs(fits[0].alpha / alpha - 1), 0.1)

    def test_measured_network_prefers_the_same_job_size(self):
        alone = pm.Fit("all_reduce", 2, 2, 1e-6, 1e-9)
        shared = pm.Fit("all_reduce", 2, 4, 5e-6, 2e-9)
        net = pm.MeasuredNetwork([alone, shared])
        self.assertIs(net.lookup("all_reduce", 2, 4), shared)
        self.assertIs(net.lookup("all_reduce", 2, 2), alone)
        self.assertIs(net.lookup("all_reduce", 2, 8), alone)
        self.assertEqual(net.seconds("all_reduce", 1000, pm.Group(1, 1, 4)), 0.0)


class ModelTest(unittest.TestCase):
    def model(self, name):
        return pm.Model.from_options(pm.read_config([os.path.join(ROOT, "configs", name + ".cfg")]))

    def test_parameter_counts(self):
        # ModelConfig::parameter_count (src/model/config.cc), written out for each preset
        def count(m, tp=1):
            v, d, f = -(-m.vocab // tp) * tp, m.d, m.ff
            att, ffn, norm = 4 * (d * d + d), d * f + f + f * d + d, 2 * d
            return (v * d + m.enc * (att + ffn + 2 * norm) + m.dec * (2 * att + ffn + 3 * norm)
                    + (2 * norm if m.pre_ln else 0))
        for name in ("tiny", "small", "base", "big"):
            m = self.model(name)
            self.assertEqual(m.parameters(), count(m), name)
        self.assertEqual(self.model("tiny").parameters(), 235520)  # the "start" record of a tiny run

    def test_rank_parameters_split_and_replicated(self):
        m = self.model("base")
        d, f = m.d, m.ff
        replicated = (m.enc * (d + d + 4 * d) + m.dec * (d + d + d + 6 * d))  # out biases, b2, norms
        local = sum(n for _, n in m.layers_params(8))
        self.assertEqual(local, (m.parameters() - replicated) // 8 + replicated)

    def test_tensor_parallel_collectives(self):
        m = self.model("tiny")  # 2 + 2 layers
        batch = pm.Batch(64, 13, 13)
        ops = pm.tp_collectives(m, batch)
        self.assertEqual(sum(c for k, _, c in ops if k == "all_reduce"), (4 * 2 + 2) + (6 * 2 + 2) + 2)
        self.assertEqual(sum(c for k, _, c in ops if k == "all_gather"), 1)
        self.assertEqual(ops[0][1], 4 * 64 * 13 * 64)  # f32 [positions, d_model]
        net = pm.MeasuredNetwork([pm.Fit("all_reduce", 2, 2, 1e-6, 0), pm.Fit("all_gather", 2, 2, 1e-6, 0)])
        p = pm.predict(m, 2, 1, batch, pm.Compute(1e9), net)
        self.assertEqual(p.collectives, {"all_reduce": 26, "all_gather": 1})
        self.assertAlmostEqual(p.tp_comm_s, (26 * 2 + 1) * 1e-6)

    def test_buckets_tile_the_gradient(self):
        m = self.model("base")
        for tp in (1, 2, 8):
            buckets = pm.gradient_buckets(m, tp, 4.0)
            self.assertEqual(sum(b for b, _ in buckets), 4 * sum(n for _, n in m.layers_params(tp)))
            self.assertEqual(buckets[-1][1], 0)  # the embedding's bucket goes last
            self.assertTrue(all(b >= 4 << 20 for b, _ in buckets[:-1]))

    def test_overlap_hides_buckets_behind_a_long_backward(self):
        m = self.model("base")
        batch = pm.Batch(100, 32, 32)
        net = pm.MeasuredNetwork([pm.Fit("all_reduce", 2, 2, 0.0, 1 / 10e9)])
        slow = pm.predict(m, 1, 2, batch, pm.Compute(1e9), net)     # minutes of backward
        fast = pm.predict(m, 1, 2, batch, pm.Compute(1e18), net)    # no backward to hide behind
        self.assertLess(slow.dp_exposed_s, 0.2 * slow.dp_comm_s)
        self.assertAlmostEqual(fast.dp_exposed_s, fast.dp_comm_s, delta=1e-3 * fast.dp_comm_s)

    def test_one_node_cluster_is_the_ring(self):
        net = pm.ClusterNetwork(pm.Link(1e-6, 100e9), pm.Link(5e-6, 10e9), 8)
        n = 1 << 24
        self.assertAlmostEqual(net.seconds("all_reduce", n, pm.Group(8, 8, 8)), 14e-6 + 1.75 * n / 100e9)
        # two nodes of 8: the ring runs at the slower of NVLink (100) and 8 NICs (80 GB/s)
        two = net.seconds("all_reduce", n, pm.Group(16, 8, 16))
        self.assertAlmostEqual(two, 14e-6 + 2 * 5e-6 + 2 * 15 / 16 * n / 80e9)
        # one member per node (tp 8): one NIC
        self.assertAlmostEqual(net.seconds("all_reduce", n, pm.Group(4, 1, 32)), 4 * 5e-6 + 1.5 * n / 10e9)

    def test_cli_predict_runs(self):
        import contextlib
        import io
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            pm.main(["predict", "--config", os.path.join(ROOT, "configs", "base.cfg"), "--tp", "2", "--dp", "8"])
        self.assertIn("tokens/s", out.getvalue())


if __name__ == "__main__":
    unittest.main()
