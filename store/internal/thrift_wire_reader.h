// The reply half of getMultiple, decoded by hand (the hot read of the
// segmenter): straight into RowResults, without building the generated
// TResult/TColumnValue objects. Both read the whole reply before throwing,
// so a pooled connection stays in sync; errors are thrown as the generated
// client would (TApplicationException, TIOError, TProtocolException,
// TTransportException) for the caller's Thrift error handling.
#pragma once

#include <cstdint>
#include <vector>

#include "store/store.h"

namespace apache::thrift {
namespace protocol {
class TProtocol;
}  // namespace protocol
namespace transport {
class TTransport;
}  // namespace transport
}  // namespace apache::thrift

namespace seg::store::internal {

// Any protocol (compact), through the protocol's virtual reads.
void RecvGetMultiple(apache::thrift::protocol::TProtocol* in, std::vector<RowResult>* results);

// TBinaryProtocol, reading the transport directly into one buffer; strings
// longer than `max_bytes` are rejected.
void RecvGetMultipleBinary(apache::thrift::transport::TTransport* t, int64_t max_bytes,
                           std::vector<RowResult>* results);

}  // namespace seg::store::internal
