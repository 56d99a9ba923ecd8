// tessera-prep: builds the German->English training data.
//
// By default the corpus is assembled from Debian packages — the Ding dictionary
// (trans-de-en, word and phrase pairs plus example sentences) and the LibreOffice help in
// German and English (paragraphs paired by id). With --source/--target, the user's own
// parallel text files are used instead. The pipeline is: extract -> clean (UTF-8, whitespace,
// length) -> de-duplicate -> split (held-out full sentences for dev/test) -> write text ->
// train a joint SentencePiece model -> encode into indexed binary datasets.
//
// Outputs in --out-dir: {train,dev,test}.{de,en} text, spm.model, {train,dev,test}.{src,tgt}.
// {bin,idx}, prep_report.json, and the marker COMPLETE, written last. When the marker exists
// the directory is complete and tessera-prep does nothing.
#include <unistd.h>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/option_values.h"
#include "data/corpus_split.h"
#include "data/ding_dictionary.h"
#include "data/indexed_dataset.h"
#include "data/libreoffice_help.h"
#include "data/parallel_text.h"
#include "data/sentencepiece_model.h"
#include "data/text_cleaning.h"

namespace fs = std::filesystem;
namespace po = boost::program_options;
using namespace tessera::data;
using Json = nlohmann::ordered_json;

namespace {

constexpr const char* kMarker = "COMPLETE";
const std::vector<std::string> kHelpPackages = {"libreoffice-help-de", "libreoffice-help-en-us"};

struct Options {
  fs::path out_dir;
  fs::path cache_dir;
  fs::path source_file;
  fs::path target_file;
  int vocab_size = 8000;
  std::size_t dev_size = 1000;
  std::size_t test_size = 1000;
  std::size_t max_len = 400;
  std::uint64_t seed = 1;
};

Json options_json(const Options& o) {
  return {{"vocab_size", o.vocab_size},         {"dev_size", o.dev_size},
          {"test_size", o.test_size},           {"max_len_chars", o.max_len},
          {"seed", o.seed},                     {"source", o.source_file.string()},
          {"target", o.target_file.string()}};
}

// Wall-clock seconds since the previous lap, for the report.
class Stopwatch {
 public:
  double lap() {
    const auto now = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    return s;
  }

 private:
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

std::string shell_quote(const std::string& s) {
  std::string quoted = "'";
  for (char c : s) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

void run_command(const std::string& command) {
  std::cout << "+ " << command << std::endl;
  const int status = std::system(command.c_str());
  TESSERA_CHECK(status == 0, "command failed (status ", status, "): ", command);
}

// --- corpus sources -------------------------------------------------------------------------

void ensure_ding_dictionary() {
  if (fs::exists(kDingDictionaryPath)) return;
  TESSERA_CHECK(::geteuid() == 0, kDingDictionaryPath,
                " is missing and installing it needs root: apt-get install trans-de-en");
  run_command("apt-get install -y -qq trans-de-en");
  TESSERA_CHECK(fs::exists(kDingDictionaryPath), "trans-de-en was installed but ",
                kDingDictionaryPath, " does not exist");
}

// Returns the directory holding help/de and help/en-US: a system-wide installation if there is
// one, else the packages fetched with `apt-get download` and unpacked (not installed: their
// dependencies would pull in LibreOffice itself) under the cache directory.
fs::path ensure_libreoffice_help(const fs::path& cache_dir) {
  const fs::path system_help = "/usr/share/libreoffice/help";
  if (fs::is_directory(system_help / "de") && fs::is_directory(system_help / "en-US"))
    return system_help;
  const fs::path unpacked = cache_dir / "unpacked";
  const fs::path help = unpacked / "usr/share/libreoffice/help";
  if (fs::is_directory(help / "de") && fs::is_directory(help / "en-US")) return help;

  fs::create_directories(unpacked);
  for (const std::string& package : kHelpPackages) {
    auto find_deb = [&]() -> fs::path {
      for (const auto& entry : fs::directory_iterator(cache_dir)) {
        const std::string name = entry.path().filename().string();
        if (name.starts_with(package + "_") && name.ends_with(".deb")) return entry.path();
      }
      return {};
    };
    fs::path deb = find_deb();
    if (deb.empty()) {
      run_command("cd " + shell_quote(cache_dir.string()) + " && apt-get download -qq " + package);
      deb = find_deb();
      TESSERA_CHECK(!deb.empty(), "apt-get download ", package, " left no .deb in ",
                    cache_dir.string());
    }
    run_command("dpkg-deb -x " + shell_quote(deb.string()) + " " + shell_quote(unpacked.string()));
  }
  TESSERA_CHECK(fs::is_directory(help / "de") && fs::is_directory(help / "en-US"),
                "unpacking ", kHelpPackages[0], " and ", kHelpPackages[1], " did not create ",
                (help / "de").string(), " and ", (help / "en-US").string());
  return help;
}

Json drop_json(const DropReport& report) {
  Json j;
  for (std::size_t i = 0; i < kNumDropReasons; ++i) {
    const auto reason = static_cast<DropReason>(i);
    j[std::string(drop_reason_name(reason))] = report.count(reason);
  }
  return j;
}

// One corpus source after extraction and cleaning.
struct Source {
  std::string name;
  std::vector<SentencePair> pairs;
  std::size_t extracted = 0;  // pairs produced by extraction, before cleaning
  DropReport report;          // extraction and cleaning drops
  std::size_t unique = 0;     // pairs left after de-duplication against everything before
  std::size_t full_sentences = 0;  // of those, full-sentence pairs (dev/test candidates)
};

Source clean_source(std::string name, std::vector<SentencePair> pairs, DropReport report,
                    const CleaningOptions& cleaning) {
  Source source{std::move(name), std::move(pairs), 0, report, 0, 0};
  source.extracted = source.pairs.size();
  clean_pairs(source.pairs, cleaning, source.report);
  std::cout << source.name << ": " << source.extracted << " pairs extracted, "
            << source.pairs.size() << " kept after cleaning" << std::endl;
  return source;
}

std::vector<Source> gather_sources(const Options& o, const CleaningOptions& cleaning) {
  std::vector<Source> sources;
  if (!o.source_file.empty()) {
    DropReport report;
    ParallelText text = read_parallel_text(o.source_file, o.target_file, report);
    constexpr std::size_t kShown = 20;
    for (std::size_t i = 0; i < text.issues.size() && i < kShown; ++i)
      std::cerr << text.issues[i] << "\n";
    if (text.issues.size() > kShown)
      std::cerr << "... and " << text.issues.size() - kShown << " more skipped lines\n";
    sources.push_back(clean_source("user", std::move(text.pairs), report, cleaning));
    return sources;
  }
  ensure_ding_dictionary();
  const fs::path help = ensure_libreoffice_help(o.cache_dir);
  {
    DropReport report;
    auto pairs = read_ding_dictionary(kDingDictionaryPath, report);
    sources.push_back(clean_source("ding", std::move(pairs), report, cleaning));
  }
  {
    DropReport report;
    HelpTreeStats stats;
    auto pairs = align_help_trees(help / "de", help / "en-US", report, &stats);
    std::cout << "libreoffice-help: " << stats.pages_aligned << " pages in both languages, "
              << stats.pages_only_one_side << " in one only" << std::endl;
    sources.push_back(clean_source("libreoffice-help", std::move(pairs), report, cleaning));
  }
  return sources;
}

// --- outputs --------------------------------------------------------------------------------

// Encodes one side of a split into an indexed dataset; returns the number of tokens.
std::size_t encode_side(const SentencePieceModel& spm, const std::vector<SentencePair>& pairs,
                        std::string SentencePair::*side, const fs::path& prefix) {
  IndexedDatasetWriter writer(prefix);
  std::size_t tokens = 0;
  for (const SentencePair& pair : pairs) {
    const std::vector<std::int32_t> ids = spm.encode(pair.*side);
    tokens += ids.size();
    writer.add(ids);
  }
  writer.finish();
  return tokens;
}

int run(const Options& o) {
  Stopwatch total, step;
  Json timings;
  fs::create_directories(o.out_dir);
  const fs::path marker = o.out_dir / kMarker;
  const fs::path report_file = o.out_dir / "prep_report.json";
  if (fs::exists(marker)) {
    std::cout << o.out_dir.string() << " is already complete (" << marker.string()
              << " exists); nothing to do" << std::endl;
    std::ifstream in(report_file);
    Json previous = Json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (!previous.is_discarded() && previous.contains("options") &&
        previous["options"] != options_json(o)) {
      std::cout << "note: it was built with different options " << previous["options"].dump()
                << "; delete the directory to rebuild" << std::endl;
    }
    return 0;
  }
  fs::create_directories(o.cache_dir);

  // 1. Extract and clean every source.
  const CleaningOptions cleaning{o.max_len};
  std::vector<Source> sources = gather_sources(o, cleaning);
  timings["extract_and_clean_s"] = step.lap();

  // 2. Merge in source order and de-duplicate across sources. De-duplication keeps first
  //    occurrences, so re-running it after each source is appended removes nothing from the
  //    already unique prefix: what it removes is exactly that source's repeats, which lets
  //    the report say how much each source contributes.
  std::vector<SentencePair> corpus;
  DropReport dedup_report;
  DedupStats dedup;
  for (Source& s : sources) {
    const std::size_t before = corpus.size();
    std::move(s.pairs.begin(), s.pairs.end(), std::back_inserter(corpus));
    s.pairs = {};
    const DedupStats d = deduplicate(corpus, /*by_source=*/true, dedup_report);
    dedup.exact_pairs += d.exact_pairs;
    dedup.same_source += d.same_source;
    s.unique = corpus.size() - before;
    for (std::size_t i = before; i < corpus.size(); ++i)
      s.full_sentences += is_full_sentence_pair(corpus[i]);
    std::cout << s.name << ": " << s.unique << " unique pairs, " << s.full_sentences
              << " full-sentence pairs" << std::endl;
  }
  dedup_report.add_kept(corpus.size());
  std::size_t full_sentences = 0;
  for (const Source& s : sources) full_sentences += s.full_sentences;
  std::cout << "after de-duplication: " << corpus.size() << " pairs (" << dedup.exact_pairs
            << " exact duplicates, " << dedup.same_source << " repeated sources removed), "
            << full_sentences << " full-sentence pairs" << std::endl;

  // 3. Split: dev and test are held-out full sentences chosen by hash.
  const CorpusSplit split =
      split_corpus(std::move(corpus), SplitOptions{o.dev_size, o.test_size, o.seed});
  timings["dedup_and_split_s"] = step.lap();
  const std::vector<std::pair<std::string, const std::vector<SentencePair>*>> splits = {
      {"train", &split.train}, {"dev", &split.dev}, {"test", &split.test}};
  for (const auto& [name, pairs] : splits)
    write_parallel_text(*pairs, o.out_dir / (name + ".de"), o.out_dir / (name + ".en"));
  std::cout << "split: train " << split.train.size() << ", dev " << split.dev.size()
            << ", test " << split.test.size() << std::endl;

  // 4. Joint SentencePiece vocabulary from both sides of train only (dev/test stay unseen).
  std::vector<std::string> sentences;
  sentences.reserve(2 * split.train.size());
  for (const SentencePair& p : split.train) {
    sentences.push_back(p.source);
    sentences.push_back(p.target);
  }
  SentencePieceOptions spm_options;
  spm_options.vocab_size = o.vocab_size;
  spm_options.seed = static_cast<std::uint32_t>(o.seed);
  const fs::path model_file = o.out_dir / "spm.model";
  std::cout << "training SentencePiece (vocab " << o.vocab_size << ") on " << sentences.size()
            << " sentences..." << std::endl;
  train_sentencepiece(sentences, model_file, spm_options);
  sentences = {};
  timings["sentencepiece_train_s"] = step.lap();

  // 5. Encode every split, source and target side in parallel.
  const SentencePieceModel spm(model_file);
  Json split_json;
  for (const auto& [name, pairs] : splits) {
    const fs::path prefix = o.out_dir / name;
    auto src = std::async(std::launch::async, encode_side, std::cref(spm), std::cref(*pairs),
                          &SentencePair::source, source_prefix(prefix));
    const std::size_t tgt_tokens = encode_side(spm, *pairs, &SentencePair::target,
                                               target_prefix(prefix));
    const std::size_t src_tokens = src.get();
    ParallelDataset check(prefix);  // re-open what we wrote: headers, sizes, equal counts
    TESSERA_CHECK(check.size() == pairs->size(), "dataset ", prefix.string(), " holds ",
                  check.size(), " pairs, expected ", pairs->size());
    split_json[name] = {{"pairs", pairs->size()},
                        {"source_tokens", src_tokens},
                        {"target_tokens", tgt_tokens}};
  }
  timings["encode_s"] = step.lap();
  timings["total_s"] = total.lap();

  // 6. Report, then the marker that declares the directory complete.
  DropReport all;
  Json sources_json;
  for (const Source& s : sources) {
    sources_json[s.name] = {{"extracted", s.extracted},
                            {"kept_after_cleaning", s.report.kept()},
                            {"unique_after_dedup", s.unique},
                            {"full_sentence_pairs", s.full_sentences},
                            {"dropped", drop_json(s.report)}};
    all.merge(s.report);
    s.report.print_table(std::cout, "dropped pairs: " + s.name);
  }
  dedup_report.print_table(std::cout, "dropped pairs: de-duplication (all sources)");
  Json report = {
      {"options", options_json(o)},
      {"sources", sources_json},
      {"deduplication",
       {{"exact_pairs", dedup.exact_pairs},
        {"same_source", dedup.same_source},
        {"kept", dedup_report.kept()},
        {"full_sentence_pairs", full_sentences}}},
      {"held_out_sources_removed_from_train", split.removed_from_train},
      {"splits", split_json},
      {"vocabulary",
       {{"model", "spm.model"},
        {"size", spm.vocab_size()},
        {"pad_id", kPadId},
        {"unk_id", kUnkId},
        {"bos_id", kBosId},
        {"eos_id", kEosId}}},
      {"timings", timings},
  };
  {
    std::ofstream out(report_file);
    out << report.dump(2) << "\n";
    TESSERA_CHECK(out, "error while writing ", report_file.string());
  }
  {
    std::ofstream out(marker);
    out << "tessera-prep completed; see prep_report.json\n";
    TESSERA_CHECK(out, "error while writing ", marker.string());
  }
  std::cout << "done in " << timings["total_s"].get<double>() << " s: " << o.out_dir.string()
            << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string out_dir, cache_dir, source_file, target_file;
  po::options_description desc(
      "tessera-prep: build the German->English corpus, SentencePiece model and binary "
      "datasets\nOptions");
  desc.add_options()
      ("help,h", "show this help")
      ("out-dir", po::value(&out_dir)->default_value("data/deen"), "output directory")
      ("vocab-size", po::value(&o.vocab_size)->default_value(8000),
       "joint SentencePiece vocabulary size (ids 0-3 are pad, unk, bos, eos)")
      ("dev-size", po::value(&o.dev_size)->default_value(1000), "held-out dev pairs (full sentences)")
      ("test-size", po::value(&o.test_size)->default_value(1000), "held-out test pairs (full sentences)")
      ("max-len", po::value(&o.max_len)->default_value(400),
       "drop pairs with a side longer than this many characters (Unicode code points)")
      ("source", po::value(&source_file), "your own source (German) text, one sentence per line")
      ("target", po::value(&target_file), "your own target (English) text, line-aligned with --source")
      ("cache-dir", po::value(&cache_dir)->default_value("data/cache"),
       "where downloaded .deb packages are kept and unpacked")
      ("seed", tessera::unsigned_option("--seed", o.seed), "seed of the split hash and SentencePiece sampling");
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::cout << desc << "\n";
      return 0;
    }
    po::notify(vm);
    TESSERA_CHECK(source_file.empty() == target_file.empty(),
                  "--source and --target must be given together");
    TESSERA_CHECK(o.vocab_size > 4, "--vocab-size must exceed the 4 special pieces");
    TESSERA_CHECK(o.max_len > 0, "--max-len must be positive");
    o.out_dir = out_dir;
    o.cache_dir = cache_dir;
    o.source_file = source_file;
    o.target_file = target_file;
    return run(o);
  } catch (const po::error& e) {
    std::cerr << "tessera-prep: " << e.what() << "\n" << desc << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "tessera-prep: error: " << e.what() << std::endl;
    return 1;
  }
}
