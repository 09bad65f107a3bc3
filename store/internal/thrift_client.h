// The Store over THBaseService (HBase's Thrift2 gateway or seg-store).
//
// A pool of connections (socket + buffered/framed transport + binary/
// compact protocol), opened lazily and reused; a connection that saw a
// transport error is dropped. Transport errors (refused, reset, EOF) are
// retried with backoff up to max_attempts (CheckAndMutate only when the
// connection could not be opened, since it is not idempotent); timeouts
// are not retried. TIOError / TIllegalArgument become Status; every Thrift
// exception is caught here. Thread-safe.
#pragma once

#include <memory>

#include "common/status.h"
#include "store/store.h"

namespace seg::store::internal {

StatusOr<std::unique_ptr<Store>> NewThriftStore(const ThriftClientOptions& options);

}  // namespace seg::store::internal
