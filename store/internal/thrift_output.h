// Thrift's process-wide diagnostics hook (apache::thrift::GlobalOutput),
// routed to glog once per process. TOutput::setOutputFunction stores a plain
// function pointer that Thrift's threads read when they print, so setting it
// in every client and server constructor raced (TSan) when stores were
// opened concurrently; the client and the server both call this instead.
#pragma once

namespace seg::store::internal {

// Installs the hook on the first call (std::call_once); thread-safe. Thrift's
// messages go to VLOG(1) (a client turns transport errors into Status), or to
// INFO once any caller passed `server` (a server logs bad clients per
// connection; from then on every message of the process goes to INFO).
void RouteThriftOutputToGlog(bool server);

}  // namespace seg::store::internal
