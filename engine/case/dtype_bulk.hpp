// Whole-tensor conversions between float and a dtype's storage bits, for
// staging inputs to a device and reading its outputs back (a case stages its
// tensors some thirty times, so these loops are a large share of a CUDA
// run's host time). Each gives exactly the scalar functions of dtype.hpp,
// bit for bit, NaNs included (tests/test_dtype.cpp checks every fp16 bit
// pattern and millions of floats); on CPUs with F16C the fp16 conversions
// run eight values per instruction.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/case/dtype.hpp"

namespace attncheck {

void floats_to_f16_bits(const float* in, std::uint16_t* out, std::size_t n);
void f16_bits_to_floats(const std::uint16_t* in, float* out, std::size_t n);
void floats_to_bf16_bits(const float* in, std::uint16_t* out, std::size_t n);
void bf16_bits_to_floats(const std::uint16_t* in, float* out, std::size_t n);

// x[i] = round_to(t, x[i]) for every i.
void round_floats_to(DType t, float* x, std::size_t n);

// Whether the fp16 loops use F16C on this CPU (tests print it).
bool bulk_f16_uses_f16c();

} // namespace attncheck
