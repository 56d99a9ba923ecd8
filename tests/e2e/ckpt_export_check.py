#!/usr/bin/env python3
"""Checks a `tessera-ckpt export` file with Python's safetensors package alone (no Tessera code).

    ckpt_export_check.py EXPORT.safetensors CHECKPOINT [--mean-of CHECKPOINT...]

Reads the checkpoint's manifest.json and shard files with safetensors.numpy, assembles each
parameter from its blocks, and checks that the export holds exactly the checkpoint's parameters
(no Adam moments) under the same names, with the same shapes and the same f32 bytes, and that the
model configuration in the file's __metadata__ equals the JSON file beside it. With --mean-of,
every exported value must instead equal the element-wise mean of those checkpoints, summed in f64
in the order given and rounded to f32. Exits 77 (skipped) when safetensors or numpy is missing.
"""
import json
import os
import sys

try:
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import load_file
except ImportError as e:
    print(f"SKIP: {e} (pip install safetensors numpy)")
    sys.exit(77)


def resolve(path):
    """A step directory, or the one `latest` names in a save root."""
    if os.path.exists(os.path.join(path, "manifest.json")):
        return path
    return os.path.join(path, open(os.path.join(path, "latest")).read().strip())


def parameters(checkpoint):
    """name -> full f32 array of every parameter value of a checkpoint, from its blocks."""
    d = resolve(checkpoint)
    manifest = json.load(open(os.path.join(d, "manifest.json")))
    shards = {s["file"]: load_file(os.path.join(d, s["file"])) for s in manifest["shards"]}
    out = {}
    for name, record in manifest["tensors"].items():
        if name.startswith("adam."):
            continue
        full = np.zeros(record["shape"], dtype=np.float32)
        covered = 0
        for s in record["slices"]:
            block = shards[s["file"]][name]
            assert list(block.shape) == s["extent"], f"{s['file']}: {name} has shape {block.shape}, manifest {s['extent']}"
            full[tuple(slice(a, a + n) for a, n in zip(s["start"], s["extent"]))] = block
            covered += block.size
        assert covered == full.size, f"{d}: the blocks of {name} cover {covered} of {full.size} elements"
        out[name] = full
    return out


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    export, checkpoint = args[0], args[1]
    mean_of = args[args.index("--mean-of") + 1:] if "--mean-of" in args else []

    got = load_file(export)
    want = parameters(checkpoint)
    if mean_of:
        parts = [parameters(c) for c in mean_of]
        want = {k: (sum(p[k].astype(np.float64) for p in parts) / len(parts)).astype(np.float32) for k in want}
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    assert not missing and not extra, f"{export}: missing {missing[:5]}, not in the checkpoint {extra[:5]}"
    for name, w in want.items():
        g = got[name]
        assert g.dtype == np.float32, f"{export}: {name} is {g.dtype}"
        assert g.shape == w.shape, f"{export}: {name} has shape {g.shape}, the checkpoint {w.shape}"
        assert g.tobytes() == w.tobytes(), \
            f"{export}: {name} differs (largest difference {np.abs(g - w).max()})"

    with safe_open(export, framework="numpy") as f:
        config = json.loads(f.metadata()["tessera.config"])
    beside = json.load(open(os.path.splitext(export)[0] + ".json"))
    assert config == beside, f"{export}: __metadata__ config differs from the .json beside it"
    for key in ("d_model", "d_ff", "heads", "encoder_layers", "decoder_layers", "vocab_size", "activation", "pre_ln",
                "dropout", "label_smoothing", "pad_id", "unk_id", "bos_id", "eos_id", "step", "naming_scheme_version"):
        assert key in config, f"{export}: the config lacks {key}"
    assert got["embedding"].shape == (config["vocab_size"], config["d_model"]), "the embedding is not unpadded"
    sample = got["encoder.0.ffn.w1.weight"]
    assert sample.shape == (config["d_model"], config["d_ff"]), "a linear weight is not [in, out]"
    what = f"the mean of {len(mean_of)} checkpoints" if mean_of else resolve(checkpoint)
    print(f"OK: {len(got)} tensors, {sum(v.size for v in got.values())} parameters in {export} equal {what}; "
          f"e.g. embedding[4, :3] = {got['embedding'][4, :3].tolist()}")


if __name__ == "__main__":
    main()
