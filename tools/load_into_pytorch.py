#!/usr/bin/env python3
"""Load a `tessera-ckpt export` file into torch.nn.Transformer.

The export holds Tessera's own names and orientation (docs/checkpoint-format.md, "Export: names
for PyTorch"); this script maps each onto PyTorch and adds what nn.Transformer lacks: the shared
embedding scaled by sqrt(d_model), the interleaved sinusoidal positions, and the output projection
tied to the embedding.

    python3 tools/load_into_pytorch.py model.safetensors
    python3 tools/load_into_pytorch.py model.safetensors --check reference.json

--check compares the log-probabilities of the pairs in a JSON file written by the test program
ckpt_reference_logprobs (the C++ forward pass) and exits 1 when any differs by more than
--tolerance. Needs torch and safetensors.
"""
import argparse
import json
import math
import sys

import torch
import torch.nn.functional as F
from safetensors import safe_open

NAMING_SCHEME_VERSION = 1


def read_export(path):
    """The export's tensors (as float32) and its configuration."""
    with safe_open(path, framework="pt") as f:
        config = json.loads(f.metadata()["tessera.config"])
        tensors = {name: f.get_tensor(name).float() for name in f.keys()}
    if config.get("naming_scheme_version") != NAMING_SCHEME_VERSION:
        sys.exit(f"{path}: naming scheme version {config.get('naming_scheme_version')}, "
                 f"this script reads version {NAMING_SCHEME_VERSION}")
    return tensors, config


def torch_state_dict(t, cfg):
    """nn.Transformer's state dict from Tessera's tensors `t`.

    A Tessera linear weight is [in, out] (y = x W + b); nn.Linear's is [out, in], so each is
    transposed. Attention's q, k, v are stacked into in_proj_weight [3d, d] in that order.
    """
    sd = {}

    def linear(dst, src):
        sd[dst + ".weight"] = t[src + ".weight"].T.contiguous()
        sd[dst + ".bias"] = t[src + ".bias"]

    def attention(dst, src):
        sd[dst + ".in_proj_weight"] = torch.cat([t[f"{src}.{p}.weight"].T for p in "qkv"]).contiguous()
        sd[dst + ".in_proj_bias"] = torch.cat([t[f"{src}.{p}.bias"] for p in "qkv"])
        linear(dst + ".out_proj", src + ".out")

    def norm(dst, src):
        sd[dst + ".weight"] = t[src + ".gamma"]
        sd[dst + ".bias"] = t[src + ".beta"]

    for i in range(cfg["encoder_layers"]):
        dst, src = f"encoder.layers.{i}", f"encoder.{i}"
        attention(dst + ".self_attn", src + ".self_attention")
        norm(dst + ".norm1", src + ".self_attention_norm")
        linear(dst + ".linear1", src + ".ffn.w1")
        linear(dst + ".linear2", src + ".ffn.w2")
        norm(dst + ".norm2", src + ".ffn_norm")
    for i in range(cfg["decoder_layers"]):
        dst, src = f"decoder.layers.{i}", f"decoder.{i}"
        attention(dst + ".self_attn", src + ".self_attention")
        norm(dst + ".norm1", src + ".self_attention_norm")
        attention(dst + ".multihead_attn", src + ".cross_attention")
        norm(dst + ".norm2", src + ".cross_attention_norm")
        linear(dst + ".linear1", src + ".ffn.w1")
        linear(dst + ".linear2", src + ".ffn.w2")
        norm(dst + ".norm3", src + ".ffn_norm")
    if cfg["pre_ln"]:
        norm("encoder.norm", "encoder.final_norm")
        norm("decoder.norm", "decoder.final_norm")
    return sd


def sinusoids(length, d):
    """pe[p, 2i] = sin(p / 10000^(2i/d)), pe[p, 2i+1] = cos(p / 10000^(2i/d)), in float64."""
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    col = torch.arange(d)
    inv_freq = torch.exp(-math.log(10000.0) * (col - col % 2).double() / d)
    angle = pos * inv_freq
    return torch.where(col % 2 == 0, torch.sin(angle), torch.cos(angle)).float()


class TesseraTransformer(torch.nn.Module):
    """torch.nn.Transformer plus Tessera's embedding, positions and tied output projection."""

    def __init__(self, cfg):
        super().__init__()
        d = cfg["d_model"]
        self.cfg = cfg
        if cfg["activation"] == "gelu":
            activation = lambda x: F.gelu(x, approximate="tanh")  # Tessera's GELU is the tanh form
        else:
            activation = F.relu
        common = dict(d_model=d, nhead=cfg["heads"], dim_feedforward=cfg["d_ff"], dropout=cfg["dropout"],
                      activation=activation, layer_norm_eps=cfg["layer_norm_eps"], batch_first=True,
                      norm_first=cfg["pre_ln"])
        # Post-LN Tessera has no final LayerNorm: nn.Transformer's default one would normalise the
        # last layer's output again (a LayerNorm with weight 1, bias 0 is not the identity), so the
        # stacks get norm=None. Pre-LN has both, loaded from encoder/decoder.final_norm.
        encoder = torch.nn.TransformerEncoder(
            torch.nn.TransformerEncoderLayer(**common), cfg["encoder_layers"],
            norm=torch.nn.LayerNorm(d, eps=cfg["layer_norm_eps"]) if cfg["pre_ln"] else None,
            enable_nested_tensor=False)
        decoder = torch.nn.TransformerDecoder(
            torch.nn.TransformerDecoderLayer(**common), cfg["decoder_layers"],
            norm=torch.nn.LayerNorm(d, eps=cfg["layer_norm_eps"]) if cfg["pre_ln"] else None)
        self.transformer = torch.nn.Transformer(d_model=d, nhead=cfg["heads"], custom_encoder=encoder,
                                                custom_decoder=decoder, batch_first=True)
        self.embedding = torch.nn.Parameter(torch.empty(cfg["vocab_size"], d))
        self.scale = math.sqrt(d)

    def embed(self, ids):
        return self.embedding[ids] * self.scale + sinusoids(ids.shape[1], self.cfg["d_model"])

    def forward(self, src, src_lengths, tgt_in, tgt_lengths):
        """Log-probabilities [B, T, V] of the next token at every target position (teacher forcing)."""
        s, t = src.shape[1], tgt_in.shape[1]
        src_pad = torch.arange(s)[None, :] >= src_lengths[:, None]  # True: a padded key, ignored
        tgt_pad = torch.arange(t)[None, :] >= tgt_lengths[:, None]
        causal = torch.ones(t, t, dtype=torch.bool).triu(1)  # True: a later position, ignored
        h = self.transformer(self.embed(src), self.embed(tgt_in), tgt_mask=causal, src_key_padding_mask=src_pad,
                             tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=src_pad, tgt_is_causal=True)
        return F.log_softmax(h @ self.embedding.T, dim=-1)  # tied output projection, no bias


def load(path):
    """The model of a `tessera-ckpt export` file, in eval mode, and its configuration."""
    tensors, cfg = read_export(path)
    model = TesseraTransformer(cfg)
    sd = {"transformer." + k: v for k, v in torch_state_dict(tensors, cfg).items()}
    sd["embedding"] = tensors["embedding"]
    model.load_state_dict(sd, strict=True)  # every PyTorch parameter filled, none left over
    return model.eval(), cfg


def padded(rows, pad):
    width = max(len(r) for r in rows)
    return torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.long)


def check(model, cfg, reference, tolerance):
    """The largest |log p(torch) - log p(C++)| over every target position and vocabulary entry."""
    pairs = json.load(open(reference))["pairs"]
    src = padded([p["src"] for p in pairs], cfg["pad_id"])
    tgt_in = padded([p["tgt_in"] for p in pairs], cfg["pad_id"])
    with torch.no_grad():
        logp = model(src, torch.tensor([len(p["src"]) for p in pairs]), tgt_in,
                     torch.tensor([len(p["tgt_in"]) for p in pairs]))
    worst = 0.0
    for b, p in enumerate(pairs):
        want = torch.tensor(p["logprobs"], dtype=torch.float64)
        got = logp[b, : want.shape[0]].double()
        worst = max(worst, (got - want).abs().max().item())
        pair_logprob = sum(got[i, y].item() for i, y in enumerate(p["tgt_out"]))
        ref_logprob = sum(want[i, y].item() for i, y in enumerate(p["tgt_out"]))
        print(f"pair {b}: {len(p['src'])} source, {len(p['tgt_out'])} target tokens: "
              f"log p = {pair_logprob:.6f} (torch) vs {ref_logprob:.6f} (tessera)")
    print(f"largest |difference| over every position and vocabulary entry: {worst:.3g} (tolerance {tolerance})")
    return worst <= tolerance


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a .safetensors file written by tessera-ckpt export")
    parser.add_argument("--check", metavar="REFERENCE.json", help="compare with the C++ log-probabilities")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    model, cfg = load(args.model)
    print(f"loaded {args.model} (step {cfg['step']}) into torch.nn.Transformer: "
          f"{sum(p.numel() for p in model.parameters())} parameters, d_model {cfg['d_model']}, "
          f"{cfg['encoder_layers']}+{cfg['decoder_layers']} layers, {'pre' if cfg['pre_ln'] else 'post'}-LN")
    if args.check and not check(model, cfg, args.check, args.tolerance):
        sys.exit(1)


if __name__ == "__main__":
    main()
