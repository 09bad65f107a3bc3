#include "common/status.h"
#include "tests/harness/status_matchers.h"

#include <gtest/gtest.h>

namespace seg {
namespace {

StatusOr<int> ParsePositive(int v) {
  if (v <= 0) return InvalidArgumentError("not positive");
  return v;
}

Status UsesMacros(int v, int* out) {
  SEG_ASSIGN_OR_RETURN(*out, ParsePositive(v));
  SEG_RETURN_IF_ERROR(v > 100 ? OutOfRangeError("too big") : Status::OK());
  return Status::OK();
}

TEST(StatusTest, OkHasNoMessageAndPrintsOk) {
  Status s;
  SEG_EXPECT_OK(s);
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, ErrorCarriesCodeMessageAndContext) {
  Status s = UnavailableError("connection refused").WithContext("store get users");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.ToString(), "UNAVAILABLE: store get users: connection refused");
}

TEST(StatusTest, MacrosPropagateFirstError) {
  int out = 0;
  SEG_EXPECT_OK(UsesMacros(5, &out));
  EXPECT_EQ(out, 5);
  EXPECT_EQ(UsesMacros(-1, &out).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(UsesMacros(101, &out).code(), StatusCode::kOutOfRange);
}

TEST(StatusTest, StatusOrHoldsMoveOnlyValues) {
  StatusOr<std::unique_ptr<int>> v = std::make_unique<int>(7);
  SEG_ASSERT_OK(v);
  std::unique_ptr<int> p = std::move(v).value();
  EXPECT_EQ(*p, 7);
}

}  // namespace
}  // namespace seg
