#!/usr/bin/env python3
"""Decode SentencePiece pieces with a CTranslate2 model, batched the way tessera-translate batches.

    python3 tools/ct2_decode.py MODEL_DIR --input src.pieces --output hyp.pieces --beam 4 --threads 1

The anchor of `tessera-bench --decode`, which runs it as a child process per configuration and
measures its wall time and peak memory; MODEL_DIR comes from tools/export_ctranslate2.py. Input and
output hold one sentence per line, its pieces separated by spaces (the bench writes the pieces of
Tessera's own SentencePiece encoder, so both systems see the same ids). Output lines are the
generated pieces without </s>.

The settings follow tessera-translate's (src/eval/translate.cc):
- sentences are sorted by length (a stable sort, as Tessera's) and decoded --batch-sentences at a
  time, one translate_batch call per batch; the output is written back in input order;
- the decoding length bound: Tessera bounds each sentence by its own source length (greedy: its
  pieces + --max-len-extra tokens; beam search: its pieces with </s> + --max-len-extra), and
  CTranslate2 takes one bound per call, so the batch gets that of its longest sentence: a sentence
  that never emits </s> may run a few tokens longer here than in Tessera (7 of the 500 test
  sentences in greedy decoding; the bench's "same output" column counts them as different);
- --length-penalty alpha: CTranslate2 normalises a finished hypothesis' log-probability by
  length^alpha, Tessera by ((5 + length) / 6)^alpha (GNMT): the same alpha, a slightly different
  curve, so beam-search outputs may differ where greedy ones agree;
- nothing is truncated (max_input_length 0) and </s> may come first (min_decoding_length 0), as in
  Tessera; one decoding thread pool of --threads threads (intra_threads), one replica.

It prints one line to stderr: sentences, generated pieces (</s> excluded) and the seconds spent
loading the model and decoding.
"""
import argparse
import sys
import time


def batches(sources, batch_sentences):
    """Indices of the sentences, sorted by length (stable), cut into batches."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    return [order[b:b + batch_sentences] for b in range(0, len(order), batch_sentences)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="CTranslate2 model directory (tools/export_ctranslate2.py)")
    parser.add_argument("--input", required=True, help="source pieces, one sentence per line")
    parser.add_argument("--output", required=True, help="generated pieces, one sentence per line")
    parser.add_argument("--beam", type=int, default=4, help="beam size (1: greedy)")
    parser.add_argument("--threads", type=int, default=1, help="CTranslate2 intra_threads")
    parser.add_argument("--batch-sentences", type=int, default=32)
    parser.add_argument("--length-penalty", type=float, default=0.6)
    parser.add_argument("--max-len-extra", type=int, default=50)
    parser.add_argument("--compute-type", default="float32", help="float32 | int8 | ... (CTranslate2's compute_type)")
    args = parser.parse_args()
    for name in ("beam", "threads", "batch_sentences"):
        if getattr(args, name) < 1:
            sys.exit(f"ct2_decode.py: --{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")

    start = time.perf_counter()
    import ctranslate2
    try:
        with open(args.input, encoding="utf-8") as f:
            sources = [line.split() for line in f.read().splitlines()]
    except OSError as e:
        sys.exit(f"ct2_decode.py: --input: {e}")
    translator = ctranslate2.Translator(args.model, device="cpu", compute_type=args.compute_type,
                                        inter_threads=1, intra_threads=args.threads)
    loaded = time.perf_counter()

    outputs = [None] * len(sources)
    for batch in batches(sources, args.batch_sentences):
        longest = max(len(sources[i]) for i in batch)
        # Tessera bounds each sentence by its own length; CTranslate2 takes one bound per call,
        # the batch's longest sentence's.
        max_length = longest + args.max_len_extra + (1 if args.beam > 1 else 0)
        results = translator.translate_batch([sources[i] for i in batch], beam_size=args.beam,
                                             length_penalty=args.length_penalty, max_batch_size=0,
                                             max_input_length=0, max_decoding_length=max_length,
                                             min_decoding_length=0, num_hypotheses=1)
        for i, result in zip(batch, results):
            outputs[i] = result.hypotheses[0]
    decoded = time.perf_counter()

    with open(args.output, "w", encoding="utf-8") as f:
        for pieces in outputs:
            f.write(" ".join(pieces) + "\n")
    print(f"ct2_decode: {len(sources)} sentences, {sum(len(p) for p in outputs)} pieces generated (</s> excluded), "
          f"load {loaded - start:.3f} s, decode {decoded - loaded:.3f} s, compute_type {args.compute_type}, "
          f"beam {args.beam}, {args.threads} thread(s)", file=sys.stderr)


if __name__ == "__main__":
    main()
