// A user's own parallel corpus: a source file and a target file with one sentence per line,
// line i of one translating line i of the other.
#pragma once

#include <cstddef>
#include <filesystem>
#include <iosfwd>
#include <string>
#include <vector>

#include "data/sentence_pair.h"
#include "data/text_cleaning.h"

namespace tessera::data {

// A line that was skipped, with where it is: "corpus.de:17: invalid UTF-8".
struct LineIssue {
  std::filesystem::path file;
  std::size_t line = 0;  // 1-based
  DropReason reason = DropReason::empty_side;
};
std::ostream& operator<<(std::ostream& os, const LineIssue& issue);

struct ParallelText {
  std::vector<SentencePair> pairs;  // kept pairs, whitespace-normalised, in file order
  std::vector<LineIssue> issues;    // one per dropped line pair (naming the offending file)
};

// Reads both files. Throws tessera::Error naming both files and both line counts when the
// counts differ, or naming the file that cannot be opened. A line pair where either side is
// invalid UTF-8 or empty after whitespace normalisation is dropped, recorded in `issues`
// with the file and line at fault, and counted in `report`.
ParallelText read_parallel_text(const std::filesystem::path& source_file,
                                const std::filesystem::path& target_file, DropReport& report);

// Writes one file per side, one sentence per line; the output of read_parallel_text reads back.
void write_parallel_text(const std::vector<SentencePair>& pairs,
                         const std::filesystem::path& source_file,
                         const std::filesystem::path& target_file);

}  // namespace tessera::data
