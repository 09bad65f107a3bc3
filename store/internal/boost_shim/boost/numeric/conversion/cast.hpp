// Stand-in for Boost's numeric_cast (see ../../../README.md): a range-checked
// integer/floating conversion that throws a std::bad_cast on overflow.
#pragma once

#include <limits>
#include <type_traits>
#include <typeinfo>
#include <utility>

namespace boost {
namespace numeric {

class bad_numeric_cast : public std::bad_cast {
 public:
  const char* what() const noexcept override { return "bad numeric conversion: overflow"; }
};

}  // namespace numeric

template <typename To, typename From>
To numeric_cast(From v) {
  if constexpr (std::is_integral_v<To> && std::is_integral_v<From>) {
    if (!std::in_range<To>(v)) throw numeric::bad_numeric_cast();
  } else {
    if (v < static_cast<From>(std::numeric_limits<To>::lowest()) ||
        v > static_cast<From>(std::numeric_limits<To>::max())) {
      throw numeric::bad_numeric_cast();
    }
  }
  return static_cast<To>(v);
}

}  // namespace boost
