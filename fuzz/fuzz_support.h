// Helpers shared by the fuzz targets (fuzz_support.cc is linked into each).
#pragma once

#include <string_view>

namespace seg::fuzz {

// When `ok` is false: prints the property that failed (and `detail`) and
// aborts, which libFuzzer reports as a crash and saves the input of.
void Require(bool ok, std::string_view what, std::string_view detail = {});

}  // namespace seg::fuzz
