// The decoding benchmark of `tessera-bench --decode`: tessera-translate against CTranslate2 on the
// same model (converted weight for weight by tools/export_ctranslate2.py), the same sentences and
// the same settings, one child process per configuration so that each has its own peak memory.
//
// For every precision (f32, int8), beam and thread count, it runs
//   tessera-translate --checkpoint C --input first-N-lines --beam B --threads T
//                     --batch-sentences 32 --length-penalty 0.6 --max-len-extra 50 [--quantize int8]
//   python3 tools/ct2_decode.py MODEL --input pieces --beam B --threads T ... [--compute-type int8]
// and measures each from spawn to exit: wall seconds, peak resident memory (ru_maxrss of wait4),
// and CPU seconds (user + system; their share of wall x threads tells a loaded machine). Both
// outputs become text through Tessera's SentencePiece model (CTranslate2's pieces are mapped to
// ids and decoded), and target tokens are counted the same way for both: the pieces of each output
// line, re-encoded by the same model (eos never counted). The table goes to stdout as markdown,
// progress to stderr.
//
// CTranslate2 is optional: when `python3 -c "import ctranslate2"` fails (or --no-anchor), its
// columns say why; the C++ program itself never needs Python.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tessera::eval {

struct DecodeBenchmarkOptions {
  std::string checkpoint;                 // step directory or save root (required)
  std::string input = "data/deen/test.de";
  int64_t sentences = 500;                // the first this many lines of input
  std::vector<int64_t> beams{1, 4};
  std::vector<int> threads{1, 2};
  int64_t batch_sentences = 32;
  double length_penalty = 0.6;
  int64_t max_len_extra = 50;
  bool int8 = true;                       // also the int8 rows
  int repeat = 1;                         // runs per configuration: best wall time, largest peak
  std::string spm;                        // default: spm.model in the checkpoint's data-dir
  std::string translate_program;          // default: tessera-translate next to this program
  std::string ckpt_program;               // default: tessera-ckpt next to this program
  std::string python = "python3";
  std::string tools_dir;                  // default: tools/ here, or next to the build directory
  std::string ct2_model;                  // a converted model: skip the conversion
  bool anchor = true;                     // run CTranslate2 when it is installed
  std::string work_dir;                   // kept when given; default a temporary one, removed
  std::string command_line;               // printed above the table
};

// Runs every configuration and prints the table; returns 0, or 1 when a Tessera run failed (the
// table still shows every row, failed ones with their reason).
int run_decode_benchmark(const DecodeBenchmarkOptions& options);

}  // namespace tessera::eval
