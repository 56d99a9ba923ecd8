#!/usr/bin/env bash
# A made-up German-English corpus for app tests: PAIRS sentence pairs of MIN_WORDS to MIN_WORDS+5
# words, each English word the translation of the German one, drawn from the first WORDS (at most
# 24) entries of a small dictionary with awk's srand(SEED). Writes OUT_PREFIX.de and OUT_PREFIX.en.
# usage: toy_corpus.sh OUT_PREFIX PAIRS MIN_WORDS SEED WORDS
set -euo pipefail
awk -v out="$1" -v pairs="$2" -v min_words="$3" -v seed="$4" -v words_used="$5" 'BEGIN {
  srand(seed);
  split("der Hund die Katze sieht das Haus groß klein rot blau und läuft schnell langsam ein Mann Frau Kind Baum heute gestern Stadt Garten", de, " ");
  split("the dog the cat sees the house big small red blue and runs fast slowly a man woman child tree today yesterday city garden", en, " ");
  n = words_used;
  for (i = 0; i < pairs; ++i) {
    words = min_words + int(rand() * 6); s = ""; t = "";
    for (w = 0; w < words; ++w) { k = 1 + int(rand() * n); s = s (w ? " " : "") de[k]; t = t (w ? " " : "") en[k]; }
    print s "." > (out ".de"); print t "." > (out ".en");
  }
}'
