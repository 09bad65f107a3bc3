// SEG_ASSERT_OK(expr) / SEG_EXPECT_OK(expr): a test assertion that `expr`
// (a Status, a StatusOr<T>, or anything else with ok(), e.g. a grpc::Status)
// is OK, printing the expression and its status when it is not:
//
//   SEG_ASSERT_OK(store->Put("users", rows)) << "while loading " << path;
//   -> store->Put("users", rows) is not OK: UNAVAILABLE: connection refused
//      while loading ...
//
// `expr` is evaluated once. Header-only; every test target can include it
// (seg_test_main puts the repository root on the include path).
#pragma once

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

#include "common/status.h"

namespace seg::testing::internal {

template <typename T, typename = void>
struct HasStatus : std::false_type {};
template <typename T>
struct HasStatus<T, std::void_t<decltype(std::declval<const T&>().status())>> : std::true_type {};

template <typename T, typename = void>
struct HasErrorMessage : std::false_type {};
template <typename T>
struct HasErrorMessage<T, std::void_t<decltype(std::declval<const T&>().error_message())>>
    : std::true_type {};

template <typename T, typename = void>
struct HasToString : std::false_type {};
template <typename T>
struct HasToString<T, std::void_t<decltype(std::declval<const T&>().ToString())>> : std::true_type {
};

// What a failed `value` says about itself.
template <typename T>
std::string DescribeStatus(const T& value) {
  if constexpr (HasStatus<T>::value) {
    return DescribeStatus(value.status());  // StatusOr<T>
  } else if constexpr (HasErrorMessage<T>::value) {
    std::ostringstream os;  // grpc::Status
    os << "code " << static_cast<int>(value.error_code()) << ": " << value.error_message();
    return os.str();
  } else if constexpr (HasToString<T>::value) {
    return value.ToString();  // seg::Status
  } else {
    return "not ok";
  }
}

template <typename T>
::testing::AssertionResult IsOk(const char* expr_text, const T& value) {
  if (value.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << expr_text << " is not OK: " << DescribeStatus(value);
}

}  // namespace seg::testing::internal

#define SEG_ASSERT_OK(expr) ASSERT_PRED_FORMAT1(::seg::testing::internal::IsOk, expr)
#define SEG_EXPECT_OK(expr) EXPECT_PRED_FORMAT1(::seg::testing::internal::IsOk, expr)
