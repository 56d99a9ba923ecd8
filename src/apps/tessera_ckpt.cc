// tessera-ckpt: offline tools for checkpoints, on one process (no MPI).
//
//   tessera-ckpt inspect DIR [--json]        what a checkpoint holds, from its manifest
//   tessera-ckpt verify DIR                  every shard against its manifest (checksums, layout)
//   tessera-ckpt convert DIR --out OUT       reshard to --tensor-parallel K, --dtype f32|bf16
//   tessera-ckpt export DIR --out FILE       the full model as one safetensors file (+ FILE.json)
//   tessera-ckpt average --last N ROOT       the element-wise mean of the newest N checkpoints
//
// DIR is a step directory or a save root with `latest`. Exit status: 0 on success, 1 when a
// checkpoint fails verification or a command fails, 2 on bad usage. The work is in src/checkpoint/
// (inspect, verify, convert, export, average); this file only parses and prints.
#include <boost/program_options.hpp>

#include <filesystem>
#include <iostream>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "checkpoint/average.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/convert.h"
#include "checkpoint/export.h"
#include "checkpoint/inspect.h"
#include "checkpoint/manifest.h"
#include "checkpoint/model_layout.h"
#include "checkpoint/verify.h"
#include "core/error.h"
#include "core/option_values.h"

namespace fs = std::filesystem;
namespace po = boost::program_options;
using namespace tessera;

namespace {

constexpr int kFailed = 1, kBadUsage = 2;

constexpr const char* kUsage =
    "usage: tessera-ckpt COMMAND [options]   (tessera-ckpt COMMAND --help for its options)\n"
    "commands:\n"
    "  inspect DIR [--json]                 step, layout, config, shards, tensors and blocks of a checkpoint\n"
    "  verify DIR                           check every shard against the manifest (exit 1 on a problem)\n"
    "  convert DIR --out OUT [--tensor-parallel K] [--dtype f32|bf16] [--weights-only]\n"
    "                                       rewrite a checkpoint for another tensor-parallel size or dtype\n"
    "  export DIR --out FILE.safetensors [--dtype f32|bf16]\n"
    "                                       the full model in one safetensors file, config in FILE.json\n"
    "  average --last N ROOT [--out OUT]    average the newest N checkpoints of a save root\n"
    "DIR: a checkpoint directory (step-NNNNNNNN) or a save root holding `latest`.\n";

const std::set<std::string> kCommands = {"inspect", "verify", "convert", "export", "average"};

// Bad usage: a missing or malformed option, an unknown command (exit 2).
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses a command's options with DIR as its one positional argument; nullopt after --help.
std::optional<po::variables_map> parse(const std::string& command, po::options_description& desc,
                                       const std::vector<std::string>& args) {
  desc.add_options()("help,h", "print this help and exit")(
      "dir", po::value<std::string>()->required(), "checkpoint directory or save root (positional)");
  po::positional_options_description positional;
  positional.add("dir", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).positional(positional).run(), vm);
    if (vm.count("help")) {
      std::cout << "tessera-ckpt " << command << " DIR [options]\n" << desc << "\n";
      return std::nullopt;
    }
    po::notify(vm);
  } catch (const po::required_option& e) {
    throw UsageError(e.get_option_name() == "--dir" ? "missing DIR: the checkpoint directory or save root"
                                                    : std::string(e.what()));
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  return vm;
}

DType parse_dtype(const std::string& text) {
  if (text == "f32") return DType::f32;
  if (text == "bf16") return DType::bf16;
  throw UsageError("--dtype: '" + text + "' is not one of f32, bf16");
}

int inspect(const std::vector<std::string>& args) {
  bool json = false;
  po::options_description desc("inspect: what a checkpoint holds, from its manifest");
  desc.add_options()("json", bound(json), "print JSON instead of text");
  const auto vm = parse("inspect", desc, args);
  if (!vm) return 0;
  const auto info = checkpoint::inspect_checkpoint((*vm)["dir"].as<std::string>());
  if (json) std::cout << info.dump(2) << "\n";
  else checkpoint::print_inspection(std::cout, info);
  return 0;
}

int verify(const std::vector<std::string>& args) {
  po::options_description desc("verify: check every shard of a checkpoint against its manifest");
  const auto vm = parse("verify", desc, args);
  if (!vm) return 0;
  const fs::path given = (*vm)["dir"].as<std::string>();
  fs::path dir;
  std::vector<std::string> problems;
  try {
    dir = checkpoint::resolve_checkpoint(given);
    problems = checkpoint::verify_checkpoint(dir);
  } catch (const std::exception& e) {
    problems.push_back(e.what());
  }
  if (!problems.empty()) {
    for (const std::string& p : problems) std::cout << "problem: " << p << "\n";
    std::cout << "FAILED: " << problems.size() << " problem" << (problems.size() == 1 ? "" : "s") << " in "
              << (dir.empty() ? given : dir).string() << "\n";
    return kFailed;
  }
  const checkpoint::Manifest m = checkpoint::read_manifest(dir);
  uint64_t bytes = 0;
  for (const checkpoint::ShardRecord& s : m.shards) bytes += s.bytes;
  std::cout << "OK: " << m.shards.size() << " shards, " << m.tensors.size() << " tensors, " << bytes
            << " bytes verified in " << dir.string() << "\n";
  return 0;
}

int convert(const std::vector<std::string>& args) {
  std::string out, dtype = "f32";
  checkpoint::ConvertOptions o;
  po::options_description desc("convert: rewrite a checkpoint for another tensor-parallel size and/or dtype");
  desc.add_options()("out", po::value(&out)->required(), "the checkpoint directory to write")(
      "tensor-parallel", bound(o.tensor_parallel), "tensor-parallel size of the output layout")(
      "dtype", bound(dtype), "f32 (bit for bit) | bf16 (rounded to nearest even)")(
      "weights-only", bound(o.weights_only), "leave out Adam's moments (the output cannot resume training)");
  const auto vm = parse("convert", desc, args);
  if (!vm) return 0;
  o.dtype = parse_dtype(dtype);
  const fs::path source = (*vm)["dir"].as<std::string>();
  // A size the model cannot be split into is bad usage, found before any work.
  const fs::path dir = checkpoint::resolve_checkpoint(source);
  const train::TrainOptions trained = checkpoint::trained_options(checkpoint::read_manifest(dir), dir);
  try {
    trained.model.validate(o.tensor_parallel);
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
  const checkpoint::ConvertReport r = checkpoint::convert_checkpoint(dir, out, o);
  std::cout << "converted " << r.source.string() << " (step " << r.step << ", tp " << r.source_tensor_parallel
            << ") -> " << r.out.string() << ": tp " << o.tensor_parallel << ", " << dtype << ", " << r.tensors
            << " tensors, " << r.bytes << " bytes, "
            << (r.with_optimizer ? "with optimizer state" : "weights only") << "\n";
  return 0;
}

int export_model(const std::vector<std::string>& args) {
  std::string out, dtype = "f32";
  po::options_description desc("export: the full model as one safetensors file, its config in FILE.json beside it");
  desc.add_options()("out", po::value(&out)->required(), "the .safetensors file to write")(
      "dtype", bound(dtype), "f32 | bf16");
  const auto vm = parse("export", desc, args);
  if (!vm) return 0;
  const DType d = parse_dtype(dtype);
  if (fs::path(out).extension() != ".safetensors")
    throw UsageError("--out: '" + out + "' must end in .safetensors (the config goes beside it as .json)");
  const checkpoint::ExportReport r = checkpoint::export_safetensors((*vm)["dir"].as<std::string>(), out, d);
  std::cout << "exported " << r.source.string() << " (step " << r.step << ") -> " << r.file.string() << ": "
            << r.tensors << " tensors, " << r.parameters << " parameters, " << dtype << ", " << r.bytes
            << " bytes; config in " << r.config_file.string() << "\n";
  return 0;
}

int average(const std::vector<std::string>& args) {
  int64_t last = 0;
  std::string out;
  po::options_description desc("average: the element-wise mean of the newest N checkpoints of a save root");
  desc.add_options()("last", po::value(&last)->required(), "how many of the newest checkpoints to average")(
      "out", po::value(&out), "the checkpoint directory to write (default: ROOT/average-last-N-step-<newest step>)");
  const auto vm = parse("average", desc, args);
  if (!vm) return 0;
  if (last < 1) throw UsageError("--last: must be at least 1, got " + std::to_string(last));
  const fs::path root = (*vm)["dir"].as<std::string>();
  const std::vector<fs::path> dirs = checkpoint::newest_checkpoints(root, last);
  const fs::path target =
      !out.empty() ? fs::path(out)
                   : checkpoint::default_average_directory(root, last, checkpoint::read_manifest(dirs.back()).step);
  const checkpoint::AverageReport r = checkpoint::average_checkpoints(dirs, target);
  std::cout << "averaged " << r.averaged.size() << " checkpoints, steps";
  for (size_t i = 0; i < r.steps.size(); ++i) std::cout << (i ? ", " : " ") << r.steps[i];
  std::cout << " (" << r.parameters << " parameters each) -> " << r.out.string() << " (step " << r.step << ")\n";
  for (const fs::path& d : r.averaged) std::cout << "  " << d.string() << "\n";
  return 0;
}

int run(const std::string& command, const std::vector<std::string>& args) {
  if (command == "inspect") return inspect(args);
  if (command == "verify") return verify(args);
  if (command == "convert") return convert(args);
  if (command == "export") return export_model(args);
  if (command == "average") return average(args);
  throw UsageError("unknown command '" + command + "'");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return kBadUsage;
  }
  const std::string command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << kUsage;
    return 0;
  }
  try {
    return run(command, std::vector<std::string>(argv + 2, argv + argc));
  } catch (const UsageError& e) {
    std::cerr << "tessera-ckpt " << command << ": " << e.what() << "\n";
    if (kCommands.count(command)) std::cerr << "(tessera-ckpt " << command << " --help lists its options)\n";
    else std::cerr << kUsage;
    return kBadUsage;
  } catch (const std::exception& e) {
    std::cerr << "tessera-ckpt " << command << ": error: " << e.what() << "\n";
    return kFailed;
  }
}
