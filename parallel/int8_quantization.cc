#include "parallel/int8_quantization.h"

#include <algorithm>
#include <mutex>
#include <vector>

#include "core/error.h"

namespace tessera::parallel {

// The enrolled layers, in the order they were built.
struct Int8Registry {
  std::mutex mutex;
  std::vector<Int8Enrolment*> layers;
  static Int8Registry& get() {
    static Int8Registry registry;
    return registry;
  }
};

Int8Enrolment::Int8Enrolment(const model::ParameterStore& store, std::function<const kernels::Int8Weight&()> quantize)
    : store_(&store), quantize_(std::move(quantize)) {
  Int8Registry& r = Int8Registry::get();
  std::lock_guard lock(r.mutex);
  r.layers.push_back(this);
}

Int8Enrolment::~Int8Enrolment() {
  Int8Registry& r = Int8Registry::get();
  std::lock_guard lock(r.mutex);
  r.layers.erase(std::remove(r.layers.begin(), r.layers.end(), this), r.layers.end());
}

Int8Summary quantize_int8(const model::ParameterStore& store) {
  TESSERA_CHECK(store.finalized(), "quantize_int8: the parameter store has no values yet (finalize and load it first)");
  TESSERA_CHECK(store.device().is_cpu(), "quantize_int8: the parameters are on ", device_name(store.device()),
                "; int8 decoding runs on the CPU only (--device cpu)");
  TESSERA_CHECK(store.dtype() == DType::f32, "quantize_int8: the parameters are ", dtype_name(store.dtype()),
                "; int8 quantisation reads f32 weights");
  Int8Registry& r = Int8Registry::get();
  std::vector<Int8Enrolment*> mine;
  {
    std::lock_guard lock(r.mutex);
    for (Int8Enrolment* e : r.layers)
      if (&e->store() == &store) mine.push_back(e);
  }
  Int8Summary summary;
  for (Int8Enrolment* e : mine) {
    const kernels::Int8Weight& w = e->quantize();
    ++summary.layers;
    summary.weights += w.in() * w.out();
    summary.int8_bytes += w.bytes();
  }
  return summary;
}

}  // namespace tessera::parallel
