// Process setup shared by every binary: glog to stderr by default, flags from
// the environment (GLOG_v, GLOG_minloglevel), a failure signal handler.
#pragma once

namespace seg {

// Call once at the top of main(). Safe to call again (later calls no-op).
void InitLogging(const char* argv0);

}  // namespace seg
