#include "data/parallel_text.h"

#include <fstream>
#include <ostream>

#include "core/error.h"

namespace tessera::data {

namespace {

std::vector<std::string> read_lines(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  TESSERA_CHECK(in, "cannot open parallel text file ", file.string());
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();  // tolerate CRLF files
    lines.push_back(std::move(line));
  }
  TESSERA_CHECK(in.eof(), "error while reading ", file.string());
  return lines;
}

void write_lines(const std::vector<SentencePair>& pairs, const std::filesystem::path& file,
                 std::string SentencePair::*side) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  TESSERA_CHECK(out, "cannot create ", file.string());
  for (const SentencePair& pair : pairs) out << pair.*side << '\n';
  out.close();
  TESSERA_CHECK(out, "error while writing ", file.string());
}

}  // namespace

std::ostream& operator<<(std::ostream& os, const LineIssue& issue) {
  os << issue.file.string() << ":" << issue.line << ": ";
  switch (issue.reason) {
    case DropReason::invalid_utf8: return os << "invalid UTF-8";
    case DropReason::empty_side: return os << "empty line";
    default: return os << drop_reason_name(issue.reason);
  }
}

ParallelText read_parallel_text(const std::filesystem::path& source_file,
                                const std::filesystem::path& target_file, DropReport& report) {
  std::vector<std::string> source = read_lines(source_file);
  std::vector<std::string> target = read_lines(target_file);
  TESSERA_CHECK(source.size() == target.size(), "parallel text files differ in length: ",
                source_file.string(), " has ", source.size(), " lines but ",
                target_file.string(), " has ", target.size(), " lines");
  ParallelText result;
  for (std::size_t i = 0; i < source.size(); ++i) {
    const std::size_t line = i + 1;
    // Check both sides before giving up, so the issue names the file that is actually bad.
    if (!is_valid_utf8(source[i]) || !is_valid_utf8(target[i])) {
      const auto& file = is_valid_utf8(source[i]) ? target_file : source_file;
      result.issues.push_back({file, line, DropReason::invalid_utf8});
      report.add(DropReason::invalid_utf8);
      continue;
    }
    SentencePair pair{normalize_whitespace(source[i]), normalize_whitespace(target[i])};
    if (pair.source.empty() || pair.target.empty()) {
      result.issues.push_back({pair.source.empty() ? source_file : target_file, line,
                               DropReason::empty_side});
      report.add(DropReason::empty_side);
      continue;
    }
    result.pairs.push_back(std::move(pair));
  }
  return result;
}

void write_parallel_text(const std::vector<SentencePair>& pairs,
                         const std::filesystem::path& source_file,
                         const std::filesystem::path& target_file) {
  write_lines(pairs, source_file, &SentencePair::source);
  write_lines(pairs, target_file, &SentencePair::target);
}

}  // namespace tessera::data
