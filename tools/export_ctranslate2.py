#!/usr/bin/env python3
"""Convert a Tessera checkpoint into a CTranslate2 model directory, weight for weight.

    python3 tools/export_ctranslate2.py runs/avg-deen/checkpoints/step-00003140 OUT_DIR
    python3 tools/export_ctranslate2.py model.safetensors OUT_DIR --spm data/deen/spm.model

SOURCE is either a `tessera-ckpt export` file (model.safetensors, read with the reading code of
tools/load_into_pytorch.py) or a checkpoint directory, which is exported first with
`tessera-ckpt export` (--tessera-ckpt names the program). OUT_DIR receives CTranslate2's
model.bin, config.json and shared_vocabulary.json; with --quantization int8 the weights are
stored as int8 (CTranslate2 can also quantise a float32 model when it loads it, with
compute_type="int8").

What makes CTranslate2 compute Tessera's function (docs/checkpoint-format.md, "Export: names for
PyTorch", lists the conventions):
- one shared vocabulary, the SentencePiece pieces in the order of their ids, so ids agree
  (<pad> 0, <unk> 1, <s> 2, </s> 3); the decoder starts from <s> and the source gets </s>
  appended (add_source_eos), as Tessera's batches do;
- embeddings scaled by sqrt(d_model) (scale_embeddings) plus Tessera's *interleaved* sinusoids,
  given as an explicit table (CTranslate2's own table puts the sines before the cosines);
- the output projection is the embedding itself (tied, no bias);
- linear weights transposed ([in, out] -> [out, in]); self-attention's q, k, v fused into one
  [3d, d] product, cross-attention's k, v into one [2d, d] product;
- pre-LN models keep their final layer norms (encoder/decoder.layer_norm), post-LN ones have none;
- layer norm epsilon and the activation (ReLU, or GELU in its tanh form) from the export's config.

Needs ctranslate2, torch and safetensors.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load_into_pytorch import read_export, sinusoids  # noqa: E402  (Tessera's export reader)

import ctranslate2  # noqa: E402
from ctranslate2.specs import common_spec, transformer_spec  # noqa: E402

DEFAULT_MAX_POSITIONS = 1024


def read_spm_pieces(path):
    """The pieces of a SentencePiece model file, in the order of their ids.

    The file is a serialized sentencepiece.ModelProto; its field 1 holds the pieces (each a
    message whose field 1 is the piece string). Reading the protobuf wire format here keeps the
    converter free of the sentencepiece and protobuf packages.
    """
    data = open(path, "rb").read()

    def varint(buf, pos):
        value, shift = 0, 0
        while True:
            if pos >= len(buf):
                raise ValueError(f"{path}: truncated varint: not a SentencePiece model")
            byte = buf[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value, pos

    def fields(buf):
        pos = 0
        while pos < len(buf):
            key, pos = varint(buf, pos)
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, pos = varint(buf, pos)
            elif wire == 1:
                value, pos = buf[pos:pos + 8], pos + 8
            elif wire == 2:
                length, pos = varint(buf, pos)
                value, pos = buf[pos:pos + length], pos + length
            elif wire == 5:
                value, pos = buf[pos:pos + 4], pos + 4
            else:
                raise ValueError(f"{path}: protobuf wire type {wire}: not a SentencePiece model")
            yield number, value

    pieces = []
    for number, value in fields(data):
        if number == 1:
            piece = [v for n, v in fields(value) if n == 1]
            if len(piece) != 1:
                raise ValueError(f"{path}: piece {len(pieces)} has no string: not a SentencePiece model")
            pieces.append(piece[0].decode("utf-8"))
    if not pieces:
        raise ValueError(f"{path}: no pieces: not a SentencePiece model")
    return pieces


def vocabulary(spm_path, cfg):
    """CTranslate2's vocabulary: the pieces in id order, the special ones where Tessera puts them."""
    try:
        pieces = read_spm_pieces(spm_path)
    except ValueError as e:
        sys.exit(f"--spm: {e}")
    if len(pieces) != cfg["vocab_size"]:
        sys.exit(f"--spm: {spm_path} has {len(pieces)} pieces but the model's vocabulary has {cfg['vocab_size']}")
    for name, want in (("pad_id", "<pad>"), ("unk_id", "<unk>"), ("bos_id", "<s>"), ("eos_id", "</s>")):
        if pieces[cfg[name]] != want:
            sys.exit(f"--spm: {spm_path}: piece {cfg[name]} ({name}) is {pieces[cfg[name]]!r}, expected {want!r}")
    if len(set(pieces)) != len(pieces):
        sys.exit(f"--spm: {spm_path}: pieces are not unique, ids would not map one to one")
    return pieces


def build_spec(t, cfg, max_positions):
    """The TransformerSpec holding Tessera's tensors `t` (numpy float32, Tessera's names)."""
    if cfg.get("naming_scheme_version") != 1:
        sys.exit(f"export naming scheme {cfg.get('naming_scheme_version')}: this converter reads version 1")
    if cfg["activation"] == "gelu":
        if cfg.get("gelu_approximation", "tanh") != "tanh":
            sys.exit(f"GELU approximation {cfg['gelu_approximation']!r}: only the tanh form maps onto CTranslate2")
        activation = common_spec.Activation.GELUTanh
    elif cfg["activation"] == "relu":
        activation = common_spec.Activation.RELU
    else:
        sys.exit(f"activation {cfg['activation']!r}: not supported by this converter")
    pre_ln = bool(cfg["pre_ln"])
    encoder = transformer_spec.TransformerEncoderSpec(cfg["encoder_layers"], cfg["heads"], pre_norm=pre_ln,
                                                      activation=activation)
    decoder = transformer_spec.TransformerDecoderSpec(cfg["decoder_layers"], cfg["heads"], pre_norm=pre_ln,
                                                      activation=activation)

    def linear(spec, name):
        spec.weight = np.ascontiguousarray(t[name + ".weight"].T)  # [in, out] -> [out, in]
        spec.bias = t[name + ".bias"]

    def fused(spec, name, parts):
        spec.weight = np.ascontiguousarray(np.concatenate([t[f"{name}.{p}.weight"].T for p in parts]))
        spec.bias = np.concatenate([t[f"{name}.{p}.bias"] for p in parts])

    def norm(spec, name):
        spec.gamma = t[name + ".gamma"]
        spec.beta = t[name + ".beta"]

    def ffn(spec, name):
        linear(spec.linear_0, name + ".ffn.w1")
        linear(spec.linear_1, name + ".ffn.w2")
        norm(spec.layer_norm, name + ".ffn_norm")

    # Positions start at 0 on both sides; a table with max_positions rows bounds the source length
    # and the decoding length (CTranslate2 refuses longer inputs with a message).
    positions = sinusoids(max_positions, cfg["d_model"]).numpy()
    for stack in (encoder, decoder):
        stack.scale_embeddings = True  # x * sqrt(d_model), Tessera's embedding_scale
        stack.position_encodings.encodings = positions
    if abs(cfg["embedding_scale"] - cfg["d_model"] ** 0.5) > 1e-6:
        sys.exit(f"embedding_scale {cfg['embedding_scale']} is not sqrt(d_model): not supported")
    encoder.embeddings[0].weight = t["embedding"]
    decoder.embeddings.weight = t["embedding"]
    decoder.projection.weight = t["embedding"]  # tied output projection, no bias

    for i, layer in enumerate(encoder.layer):
        name = f"encoder.{i}"
        fused(layer.self_attention.linear[0], name + ".self_attention", "qkv")
        linear(layer.self_attention.linear[1], name + ".self_attention.out")
        norm(layer.self_attention.layer_norm, name + ".self_attention_norm")
        ffn(layer.ffn, name)
    for j, layer in enumerate(decoder.layer):
        name = f"decoder.{j}"
        fused(layer.self_attention.linear[0], name + ".self_attention", "qkv")
        linear(layer.self_attention.linear[1], name + ".self_attention.out")
        norm(layer.self_attention.layer_norm, name + ".self_attention_norm")
        linear(layer.attention.linear[0], name + ".cross_attention.q")
        fused(layer.attention.linear[1], name + ".cross_attention", "kv")
        linear(layer.attention.linear[2], name + ".cross_attention.out")
        norm(layer.attention.layer_norm, name + ".cross_attention_norm")
        ffn(layer.ffn, name)
    if pre_ln:
        norm(encoder.layer_norm, "encoder.final_norm")
        norm(decoder.layer_norm, "decoder.final_norm")
    return transformer_spec.TransformerSpec(encoder, decoder)


def export_checkpoint(checkpoint, tessera_ckpt, out_file):
    """Runs `tessera-ckpt export` on a checkpoint directory."""
    command = [tessera_ckpt, "export", checkpoint, "--out", out_file]
    try:
        done = subprocess.run(command, capture_output=True, text=True)
    except FileNotFoundError:
        sys.exit(f"--tessera-ckpt: cannot run {tessera_ckpt!r} (needed to export the checkpoint {checkpoint})")
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stderr.strip()}")


def default_spm(checkpoint):
    """spm.model in the training run's data-dir, read from the checkpoint's manifest (as tessera-translate does)."""
    import json
    manifest_dir = checkpoint
    if not os.path.exists(os.path.join(manifest_dir, "manifest.json")):
        latest = os.path.join(checkpoint, "latest")
        if os.path.exists(latest):
            manifest_dir = os.path.join(checkpoint, open(latest).read().strip()) if os.path.isfile(latest) else latest
    manifest = os.path.join(manifest_dir, "manifest.json")
    if not os.path.exists(manifest):
        sys.exit(f"{checkpoint}: no manifest.json: give --spm")
    for line in json.load(open(manifest))["config"].splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "data-dir":
            return os.path.join(value.strip(), "spm.model")
    sys.exit(f"{manifest}: its config has no data-dir: give --spm")


def convert(source, out_dir, spm=None, tessera_ckpt="tessera-ckpt", quantization=None,
            max_positions=DEFAULT_MAX_POSITIONS):
    """Writes the CTranslate2 model of `source` (export file or checkpoint directory) to out_dir."""
    with tempfile.TemporaryDirectory(prefix="tessera-ct2-") as tmp:
        if os.path.isdir(source):
            spm = spm or default_spm(source)
            export = os.path.join(tmp, "model.safetensors")
            export_checkpoint(source, tessera_ckpt, export)
        elif os.path.isfile(source):
            if not spm:
                sys.exit(f"{source}: an export file does not name its vocabulary: give --spm")
            export = source
        else:
            sys.exit(f"{source}: no such checkpoint directory or export file")
        tensors, cfg = read_export(export)
    if not os.path.isfile(spm):
        sys.exit(f"--spm: {spm}: no such file")
    t = {name: value.numpy().astype(np.float32) for name, value in tensors.items()}
    spec = build_spec(t, cfg, max_positions)
    spec.config.layer_norm_epsilon = float(cfg["layer_norm_eps"])
    spec.config.add_source_eos = True  # Tessera's source is its pieces followed by </s>
    spec.config.decoder_start_token = "<s>"
    pieces = vocabulary(spm, cfg)
    spec.register_source_vocabulary(pieces)
    spec.register_target_vocabulary(pieces)
    spec.validate()
    spec.optimize(quantization=quantization)  # aliases the three copies of the embedding
    os.makedirs(out_dir, exist_ok=True)
    spec.save(out_dir)
    return cfg


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="checkpoint directory (step-NNNNNNNN or a save root), or a tessera-ckpt export file")
    parser.add_argument("out_dir", help="CTranslate2 model directory to write")
    parser.add_argument("--spm", help="SentencePiece model (default for a checkpoint: spm.model in its run's data-dir)")
    parser.add_argument("--tessera-ckpt", default="tessera-ckpt", help="the tessera-ckpt program (for a checkpoint directory)")
    parser.add_argument("--quantization", choices=["int8"], help="store the weights quantised")
    parser.add_argument("--max-positions", type=int, default=DEFAULT_MAX_POSITIONS,
                        help="rows of the position table: the longest source and translation CTranslate2 accepts")
    args = parser.parse_args()
    cfg = convert(args.source, args.out_dir, args.spm, args.tessera_ckpt, args.quantization, args.max_positions)
    print(f"converted {args.source} (step {cfg['step']}) -> {args.out_dir}: CTranslate2 {ctranslate2.__version__}, "
          f"d_model {cfg['d_model']}, {cfg['encoder_layers']}+{cfg['decoder_layers']} layers, "
          f"{'pre' if cfg['pre_ln'] else 'post'}-LN, vocabulary {cfg['vocab_size']}")


if __name__ == "__main__":
    main()
