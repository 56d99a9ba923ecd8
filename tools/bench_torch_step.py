#!/usr/bin/env python3
"""Time one training step of Tessera's model in PyTorch eager: the anchor of tessera-bench's step table.

The model is tools/load_into_pytorch.py's TesseraTransformer (torch.nn.Transformer plus Tessera's
scaled shared embedding, sinusoidal positions and tied output projection), switched to Tessera's
training graph: dropout on the embedding sums and after every sublayer, attention-probability
dropout at --attention-dropout, and none inside the feed-forward block (Tessera has none there;
nn.TransformerEncoderLayer's own `dropout` module is replaced by the identity). A step is what
Tessera's Trainer::train_step does: forward, label-smoothed cross-entropy summed over the target
tokens and divided by their number, backward, the global gradient norm, and torch.optim.Adam
(0.9, 0.98, 1e-9) with its default (for-loop, single-tensor) implementation on the CPU.

The batch has the shape of tessera-bench's: one sentence per --src-lengths / --tgt-lengths entry
(tokens including EOS / BOS), padded to the longest, random token ids. tokens/s counts source plus
target tokens over the best step, as tessera-bench does. tessera-bench runs this script itself
when `python3 -c "import torch"` works; alone:

    python3 tools/bench_torch_step.py --threads 1 --d-model 256 --d-ff 1024 --heads 4 \
        --encoder-layers 3 --decoder-layers 3 --pre-ln --src-lengths 25,22,31 --tgt-lengths 25,22,31

The last line of the output is machine-readable:
    RESULT best_s=<s> mean_s=<s> tokens=<n> tokens_per_s=<x> threads=<t> torch=<version>
"""
import argparse
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load_into_pytorch import TesseraTransformer  # noqa: E402  (the model, mapped once)


def lengths(text):
    return [int(v) for v in text.split(",") if v]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--steps", type=int, default=3, help="timed steps")
    p.add_argument("--warmup-steps", type=int, default=1, help="untimed steps first")
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--d-model", type=int, default=512)
    p.add_argument("--d-ff", type=int, default=2048)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--encoder-layers", type=int, default=6)
    p.add_argument("--decoder-layers", type=int, default=6)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--attention-dropout", type=float, default=0.0)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--activation", choices=["relu", "gelu"], default="relu")
    p.add_argument("--pre-ln", action="store_true")
    p.add_argument("--pad-id", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--src-lengths", type=lengths, required=True, help="comma-separated source lengths")
    p.add_argument("--tgt-lengths", type=lengths, required=True, help="comma-separated target lengths")
    args = p.parse_args()
    if len(args.src_lengths) != len(args.tgt_lengths) or not args.src_lengths:
        p.error("--src-lengths and --tgt-lengths need one entry per sentence each")
    return args


class TrainingGraph(torch.nn.Module):
    """TesseraTransformer with Tessera's training-time dropout sites; returns the logits."""

    def __init__(self, args):
        super().__init__()
        cfg = dict(d_model=args.d_model, heads=args.heads, d_ff=args.d_ff, dropout=args.dropout,
                   activation=args.activation, layer_norm_eps=1e-6, pre_ln=args.pre_ln,
                   encoder_layers=args.encoder_layers, decoder_layers=args.decoder_layers,
                   vocab_size=args.vocab_size)
        self.model = TesseraTransformer(cfg)
        torch.nn.init.normal_(self.model.embedding, std=args.d_model ** -0.5)
        self.dropout = args.dropout
        t = self.model.transformer
        for layer in list(t.encoder.layers) + list(t.decoder.layers):
            layer.dropout = torch.nn.Identity()  # no dropout inside Tessera's feed-forward block
            for attention in ("self_attn", "multihead_attn"):
                if hasattr(layer, attention):
                    getattr(layer, attention).dropout = args.attention_dropout

    def forward(self, src, src_pad, tgt_in, tgt_pad, causal):
        m = self.model
        embed = lambda ids: F.dropout(m.embed(ids), self.dropout, self.training)
        h = m.transformer(embed(src), embed(tgt_in), tgt_mask=causal, src_key_padding_mask=src_pad,
                          tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=src_pad, tgt_is_causal=True)
        return h @ m.embedding.T  # tied output projection


def batch(args):
    g = torch.Generator().manual_seed(args.seed)
    b, s, t = len(args.src_lengths), max(args.src_lengths), max(args.tgt_lengths)
    src_len, tgt_len = torch.tensor(args.src_lengths), torch.tensor(args.tgt_lengths)
    src_pad = torch.arange(s)[None, :] >= src_len[:, None]
    tgt_pad = torch.arange(t)[None, :] >= tgt_len[:, None]
    ids = lambda shape: torch.randint(4, args.vocab_size, shape, generator=g)
    src = ids((b, s)).masked_fill(src_pad, args.pad_id)
    tgt_in = ids((b, t)).masked_fill(tgt_pad, args.pad_id)
    tgt_out = ids((b, t)).masked_fill(tgt_pad, args.pad_id)
    causal = torch.ones(t, t, dtype=torch.bool).triu(1)
    return (src, src_pad, tgt_in, tgt_pad, causal), tgt_out, int(tgt_len.sum()), int(src_len.sum() + tgt_len.sum())


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = TrainingGraph(args).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    inputs, tgt_out, target_tokens, tokens = batch(args)

    def step():
        optimizer.zero_grad(set_to_none=True)
        logits = model(*inputs)
        loss = F.cross_entropy(logits.reshape(-1, args.vocab_size), tgt_out.reshape(-1), ignore_index=args.pad_id,
                               label_smoothing=args.label_smoothing, reduction="sum") / target_tokens
        loss.backward()
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])  # Tessera logs it every step
        optimizer.step()
        return loss.item(), norm.item()

    times = []
    for i in range(args.warmup_steps + args.steps):
        t0 = time.perf_counter()
        loss, norm = step()
        if i >= args.warmup_steps:
            times.append(time.perf_counter() - t0)
        if not math.isfinite(loss) or not math.isfinite(norm):
            sys.exit(f"step {i}: loss {loss}, gradient norm {norm}")
    best, mean = min(times), sum(times) / len(times)
    print(f"PyTorch {torch.__version__} eager, {args.threads} thread(s): {sum(p.numel() for p in params)} parameters, "
          f"{len(args.src_lengths)} sentences, {tokens} tokens; step mean {mean:.3f} s, best {best:.3f} s")
    print(f"RESULT best_s={best:.6f} mean_s={mean:.6f} tokens={tokens} tokens_per_s={tokens / best:.1f} "
          f"threads={args.threads} torch={torch.__version__}")


if __name__ == "__main__":
    main()
