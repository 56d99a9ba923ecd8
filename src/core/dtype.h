// Element types and devices a tensor can live in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tessera {

// f64 exists for gradient checks against finite differences; training runs in f32 (bf16 for
// storage and transfer).
enum class DType : uint8_t { f32, f64, bf16, i32 };

// Where a tensor lives: host memory, or the memory of one GPU. The ordinal is the CUDA device
// index among the GPUs the process sees (CUDA_VISIBLE_DEVICES applied); each rank uses one GPU.
enum class DeviceKind : uint8_t { cpu, cuda };
struct Device {
  DeviceKind kind = DeviceKind::cpu;
  int ordinal = 0;

  static const Device cpu;
  static constexpr Device cuda(int ordinal) { return Device{DeviceKind::cuda, ordinal}; }
  constexpr bool is_cpu() const { return kind == DeviceKind::cpu; }
  constexpr bool is_cuda() const { return kind == DeviceKind::cuda; }
};
// Written out (not defaulted) because the CUDA sources that include this header are C++17.
constexpr bool operator==(const Device& a, const Device& b) { return a.kind == b.kind && a.ordinal == b.ordinal; }
constexpr bool operator!=(const Device& a, const Device& b) { return !(a == b); }
inline constexpr Device Device::cpu{DeviceKind::cpu, 0};

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::bf16: return 2;
    case DType::i32: return 4;
  }
  return 0;
}

constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::bf16: return "bf16";
    case DType::i32: return "i32";
  }
  return "?";
}

// "cpu", or "cuda:<ordinal>".
inline std::string device_name(Device d) { return d.is_cpu() ? "cpu" : "cuda:" + std::to_string(d.ordinal); }

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::i32; }

}  // namespace tessera
