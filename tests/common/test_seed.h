// Replayable randomness for tests. Every test draws from its own seed: a base seed (a fixed
// default, or TESSERA_TEST_SEED=N from the environment) mixed with the test's full name, so a test
// sees the same inputs whether it runs alone, filtered or in the whole suite, and on every rank of
// an mpirun job. A failing test prints the line that replays it.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

namespace tessera::testing {

inline constexpr uint64_t kDefaultTestSeed = 20240531;

// TESSERA_TEST_SEED when it is set to a number, else the fixed default.
inline uint64_t base_test_seed() {
  static const uint64_t seed = [] {
    const char* env = std::getenv("TESSERA_TEST_SEED");
    if (env == nullptr || *env == '\0') return kDefaultTestSeed;
    char* end = nullptr;
    const unsigned long long v = std::strtoull(env, &end, 10);
    if (*end != '\0') {
      std::fprintf(stderr, "TESSERA_TEST_SEED='%s' is not a number\n", env);
      std::exit(2);
    }
    return static_cast<uint64_t>(v);
  }();
  return seed;
}

// "Suite.Name" of the running test ("" outside a test).
inline std::string current_test_name() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return info ? std::string(info->test_suite_name()) + "." + info->name() : std::string();
}

// The running test's seed: the base seed mixed with the test's name (FNV-1a, then splitmix64).
inline uint64_t test_seed() {
  uint64_t h = 1469598103934665603ull ^ base_test_seed();
  for (char c : current_test_name()) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  h += 0x9e3779b97f4a7c15ull;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

// A generator seeded with test_seed(), reseeded whenever a new test starts.
inline std::mt19937_64& rng() {
  static std::mt19937_64 gen;
  static std::string seeded_for = "\x01";
  const std::string name = current_test_name();
  if (name != seeded_for) {
    gen.seed(test_seed());
    seeded_for = name;
  }
  return gen;
}

// Prints, once per failing test, how to replay it with the same random inputs. (It takes the
// test's name from OnTestStart: asking GoogleTest for it while a result is being reported would
// deadlock on GoogleTest's own mutex.)
class SeedOnFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  void OnTestStart(const ::testing::TestInfo& info) override {
    name_ = std::string(info.test_suite_name()) + "." + info.name();
    seed_ = test_seed();
    printed_ = false;
  }
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed() || printed_) return;
    printed_ = true;
    std::fprintf(stderr, "[seed] %s failed with TESSERA_TEST_SEED=%llu (its own seed %llu); replay with "
                 "TESSERA_TEST_SEED=%llu --gtest_filter=%s\n", name_.c_str(),
                 static_cast<unsigned long long>(base_test_seed()), static_cast<unsigned long long>(seed_),
                 static_cast<unsigned long long>(base_test_seed()), name_.c_str());
  }

 private:
  std::string name_;
  uint64_t seed_ = 0;
  bool printed_ = false;
};

inline const bool kSeedPrinterInstalled = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new SeedOnFailurePrinter);
  return true;
}();

}  // namespace tessera::testing
