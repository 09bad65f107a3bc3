// seg-store over the wire: the contract suite through the Thrift2 client
// against a real seg-store process (all transport x protocol combos), and
// what only a server has: HBase exceptions, crash durability (kill -9),
// hostile bytes, vanishing clients, clean shutdown, observers.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thrift/TApplicationException.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>
#include <functional>  // before Thrift headers (TServerSocket.h needs it)

#include <poll.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <latch>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "common/metrics.h"
#include "proto/THBaseService.h"
#include "store/internal/raw_wire_contract.h"
#include "store/internal/store_contract.h"
#include "store/server/store_server.h"
#include "tests/harness/poll.h"
#include "tests/harness/process.h"
#include "tests/harness/status_matchers.h"

namespace seg::store::testing {
namespace {

using namespace std::chrono_literals;
namespace at = apache::thrift;

// seg-store is built next to this test binary (store/); found from our own
// path so it works whatever ctest passes in the environment.
// SEG_STORE_BINARY runs the tests against another build (e.g. to measure an
// older seg-store with the hostile-client tests).
std::string SegStoreBinary() {
  if (const char* other = std::getenv("SEG_STORE_BINARY")) return other;
  return seg::testing::BinaryDir() + "/store/seg-store";  // this test's build
}

const char* Name(ThriftTransport t) {
  return t == ThriftTransport::kFramed ? "framed" : "buffered";
}
const char* Name(ThriftProtocol p) { return p == ThriftProtocol::kCompact ? "compact" : "binary"; }

// A seg-store child on a free port (it binds port 0 and reports the port).
struct ServerProcess {
  seg::testing::TempDir dir;
  seg::testing::ChildProcess child;
  int port = -1;
  int metrics_port = 0;  // > 0: serve /metrics there
  ThriftTransport transport = ThriftTransport::kBuffered;
  ThriftProtocol protocol = ThriftProtocol::kBinary;

  std::string data_dir() const { return dir.path() + "/db"; }
  std::string log() const { return dir.path() + "/seg-store.log"; }

  // `server_keys`: "key: value" lines of store.server.
  Status Start(const std::string& server_keys = "", std::vector<std::string> extra_args = {}) {
    std::string config = dir.path() + "/seg-store.yaml";
    std::string port_file = dir.path() + "/port";
    std::remove(port_file.c_str());
    {
      std::ofstream out(config);
      out << ContractTablesYaml();  // the store: block
      if (!server_keys.empty()) {
        out << "  server:\n";
        std::istringstream lines(server_keys);
        for (std::string line; std::getline(lines, line);) out << "    " << line << "\n";
      }
    }
    std::vector<std::string> argv = {
        SegStoreBinary(), "--config",   config,        "--data-dir", data_dir(),
        "--port",         "0",          "--port-file", port_file,    "--transport",
        Name(transport),  "--protocol", Name(protocol)};
    if (metrics_port > 0) argv.insert(argv.end(), {"--metrics-port", std::to_string(metrics_port)});
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    SEG_ASSIGN_OR_RETURN(child, seg::testing::ChildProcess::Start(argv, log()));
    bool exited = false;
    ::testing::AssertionResult written = seg::testing::PollUntil(
        [&] {
          std::ifstream in(port_file);
          if (in >> port) return true;
          exited = !child.running();
          return exited;
        },
        20s, "seg-store's port file", 5ms);
    if (exited) return InternalError("seg-store exited; see " + log());
    if (!written) return DeadlineExceededError(written.message());
    return seg::testing::WaitForTcpPort(port, 10s);
  }

  ThriftClientOptions ClientOptions() const {
    ThriftClientOptions o;
    o.port = port;
    o.transport = transport;
    o.protocol = protocol;
    o.call_timeout_ms = 20000;
    o.backoff_initial_ms = 10;
    o.backoff_max_ms = 100;
    return o;
  }
};

// One server per transport/protocol combination, shared by the contract
// tests (they use per-test row prefixes) and torn down at exit.
ServerProcess* SharedServer(ThriftTransport t, ThriftProtocol p) {
  static std::mutex mutex;
  static std::map<std::pair<int, int>, std::unique_ptr<ServerProcess>> servers;
  std::lock_guard<std::mutex> lock(mutex);
  auto& s = servers[{static_cast<int>(t), static_cast<int>(p)}];
  if (!s) {
    auto server = std::make_unique<ServerProcess>();
    server->transport = t;
    server->protocol = p;
    Status st = server->Start();
    SEG_EXPECT_OK(st);
    if (!st.ok()) return nullptr;
    s = std::move(server);
  }
  return s.get();
}

class ThriftEnv : public StoreEnv {
 public:
  ThriftEnv(ThriftTransport t, ThriftProtocol p) {
    ServerProcess* server = SharedServer(t, p);
    if (server == nullptr) return;
    StoreOptions o;
    o.backend = StoreOptions::Backend::kThrift;
    o.thrift = server->ClientOptions();
    auto s = OpenStore(o);
    SEG_EXPECT_OK(s);
    if (s.ok()) store_ = std::move(*s);
  }
  Store* store() override { return store_.get(); }
  int64_t NowMs() override { return Clock::Real()->NowMs(); }

 private:
  std::unique_ptr<Store> store_;
};

StoreBackend Backend(ThriftTransport t, ThriftProtocol p) {
  return StoreBackend{std::string(Name(t)) + "_" + Name(p),
                      [t, p] { return std::make_unique<ThriftEnv>(t, p); }};
}

INSTANTIATE_TEST_SUITE_P(
    Thrift, StoreContractTest,
    ::testing::Values(Backend(ThriftTransport::kBuffered, ThriftProtocol::kBinary),
                      Backend(ThriftTransport::kFramed, ThriftProtocol::kBinary),
                      Backend(ThriftTransport::kBuffered, ThriftProtocol::kCompact),
                      Backend(ThriftTransport::kFramed, ThriftProtocol::kCompact)),
    [](const ::testing::TestParamInfo<StoreBackend>& info) { return info.param.name; });

// A raw generated client, to see HBase's exceptions as HBase clients do.
struct RawClient {
  std::shared_ptr<at::transport::TSocket> socket;
  std::shared_ptr<at::transport::TTransport> transport;
  std::unique_ptr<hbase::THBaseServiceClient> client;
  explicit RawClient(int port, ThriftTransport t = ThriftTransport::kBuffered,
                     ThriftProtocol p = ThriftProtocol::kBinary) {
    socket = std::make_shared<at::transport::TSocket>("127.0.0.1", port);
    socket->setRecvTimeout(10000);
    if (t == ThriftTransport::kFramed) {
      transport = std::make_shared<at::transport::TFramedTransport>(socket);
    } else {
      transport = std::make_shared<at::transport::TBufferedTransport>(socket);
    }
    std::shared_ptr<at::protocol::TProtocol> proto;
    if (p == ThriftProtocol::kCompact) {
      proto = std::make_shared<at::protocol::TCompactProtocol>(transport);
    } else {
      proto = std::make_shared<at::protocol::TBinaryProtocol>(transport);
    }
    client = std::make_unique<hbase::THBaseServiceClient>(proto);
    transport->open();
  }
};

// A plain TCP connection for writing arbitrary bytes.
struct RawSocket {
  int fd = -1;
  explicit RawSocket(int port) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(fd);
      fd = -1;
    }
  }
  ~RawSocket() {
    if (fd >= 0) close(fd);
  }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;
  bool ok() const { return fd >= 0; }
  bool Send(std::string_view bytes) {
    return send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }
  // True once the server has closed the connection (EOF or reset), false at
  // the deadline. Whatever the server sends before closing is read and dropped.
  bool WaitClosed(std::chrono::steady_clock::time_point deadline) {
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now())
                      .count();
      if (left <= 0) return false;
      pollfd p{};
      p.fd = fd;
      p.events = POLLIN | POLLRDHUP;
      if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char buf[4096];
      ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) return true;
    }
  }
};

// The start of a strict-binary call whose field 1 (`table`, a string)
// claims `claimed` bytes; none of them follow.
std::string ClaimedStringCall(const std::string& method, int32_t claimed) {
  auto mem = std::make_shared<at::transport::TMemoryBuffer>();
  at::protocol::TBinaryProtocol p(mem);
  p.writeMessageBegin(method, at::protocol::T_CALL, 1);
  p.writeStructBegin("args");
  p.writeFieldBegin("table", at::protocol::T_STRING, 1);
  p.writeI32(claimed);
  return mem->getBufferAsString();
}

// The start of putMultiple("t", tputs) whose list claims `claimed` TPuts;
// no element follows.
std::string ClaimedListCall(int32_t claimed) {
  auto mem = std::make_shared<at::transport::TMemoryBuffer>();
  at::protocol::TBinaryProtocol p(mem);
  p.writeMessageBegin("putMultiple", at::protocol::T_CALL, 1);
  p.writeStructBegin("args");
  p.writeFieldBegin("table", at::protocol::T_STRING, 1);
  p.writeBinary("t");
  p.writeFieldEnd();
  p.writeFieldBegin("tputs", at::protocol::T_LIST, 2);
  p.writeListBegin(at::protocol::T_STRUCT, static_cast<uint32_t>(claimed));
  return mem->getBufferAsString();
}

int64_t ProcField(const ServerProcess& server, std::string_view field) {
  auto v = seg::testing::ProcStatusField(server.child.pid(), field);
  SEG_EXPECT_OK(v);
  return v.ok() ? *v : -1;
}

// Clients the server is serving (seg_store_server_connections); -1 when
// it has no /metrics or (an older build) no such gauge.
double Connections(const ServerProcess& server) {
  if (server.metrics_port <= 0) return -1;
  return seg::testing::MetricValue(server.metrics_port, "seg_store_server_connections");
}

// Waits until the server serves no client: every connection's thread is
// done with it. Through the gauge when there is one, else (older builds)
// until the process runs at most `threads` threads.
bool WaitNoClients(const ServerProcess& server, int64_t threads,
                   std::chrono::milliseconds timeout = 20s) {
  const bool gauge = Connections(server) >= 0;
  return static_cast<bool>(seg::testing::PollUntil(
      [&] { return gauge ? Connections(server) == 0 : ProcField(server, "Threads") <= threads; },
      timeout, "no clients", 5ms));
}

hbase::TPut PutOf(const std::string& row, const std::string& value) {
  hbase::TPut p;
  p.row = row;
  hbase::TColumnValue cv;
  cv.family = "a";
  cv.qualifier = "q";
  cv.value = value;
  p.columnValues.push_back(cv);
  return p;
}

std::string GetValue(RawClient& raw, const std::string& row) {
  hbase::TGet g;
  g.row = row;
  hbase::TResult r;
  raw.client->get(r, "t", g);
  return r.columnValues.empty() ? "" : r.columnValues[0].value;
}

// The TIOError message of `call`, or "" when it did not throw one.
template <typename Fn>
std::string IoErrorOf(Fn&& call) {
  try {
    call();
  } catch (const hbase::TIOError& e) {
    return e.message;
  }
  return "";
}

std::unique_ptr<Store> ClientFor(const ServerProcess& server) {
  StoreOptions o;
  o.backend = StoreOptions::Backend::kThrift;
  o.thrift = server.ClientOptions();
  auto s = OpenStore(o);
  SEG_EXPECT_OK(s);
  return s.ok() ? std::move(*s) : nullptr;
}

// The server answers a put + get after whatever the test did to it.
void ExpectServes(const ServerProcess& server, const std::string& row) {
  auto store = ClientFor(server);
  SEG_ASSERT_OK(store->Put("t", {{row, {Cell{"a", "q", 1, "alive"}}}}));
  GetRequest g;
  g.row = row;
  auto r = store->Get("t", g);
  SEG_ASSERT_OK(r);
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ(r->cell(0).value, "alive");
}

TEST(StoreServerTest, UnknownScannerIdIsTIllegalArgumentAndUnknownTableTIOError) {
  ServerProcess* server = SharedServer(ThriftTransport::kBuffered, ThriftProtocol::kBinary);
  ASSERT_NE(server, nullptr);
  RawClient raw(server->port);
  std::vector<hbase::TResult> rows;
  EXPECT_THROW(raw.client->getScannerRows(rows, 987654, 10), hbase::TIllegalArgument);
  EXPECT_THROW(raw.client->closeScanner(987654), hbase::TIllegalArgument);
  hbase::TGet get;
  get.row = "r";
  hbase::TResult result;
  EXPECT_THROW(raw.client->get(result, "no_such_table", get), hbase::TIOError);
  // The connection stays usable after declared exceptions.
  raw.client->get(result, "t", get);
  EXPECT_FALSE(result.__isset.row);
  EXPECT_TRUE(result.columnValues.empty());
}

// As HBase (checked against it in store_real_test).
TEST(StoreServerTest, DeleteTypeAppliesToFamilyOnlyColumnsAsHBase) {
  ServerProcess* server = SharedServer(ThriftTransport::kBuffered, ThriftProtocol::kBinary);
  ASSERT_NE(server, nullptr);
  ExpectDeleteTypeAppliesToFamilyOnlyColumns("127.0.0.1", server->port, "raw-delete-type");
}

TEST(StoreServerTest, RequestMissingRequiredFieldIsRejected) {
  ServerProcess* server = SharedServer(ThriftTransport::kBuffered, ThriftProtocol::kBinary);
  ASSERT_NE(server, nullptr);
  RawClient raw(server->port);
  auto proto = std::make_shared<at::protocol::TBinaryProtocol>(raw.transport);
  // get(table="t", tget={}) with TGet.row (required) left out.
  proto->writeMessageBegin("get", at::protocol::T_CALL, 1);
  proto->writeStructBegin("get_args");
  proto->writeFieldBegin("table", at::protocol::T_STRING, 1);
  proto->writeBinary("t");
  proto->writeFieldEnd();
  proto->writeFieldBegin("tget", at::protocol::T_STRUCT, 2);
  proto->writeStructBegin("TGet");
  proto->writeFieldBegin("maxVersions", at::protocol::T_I32, 5);
  proto->writeI32(1);
  proto->writeFieldEnd();
  proto->writeFieldStop();
  proto->writeStructEnd();
  proto->writeFieldEnd();
  proto->writeFieldStop();
  proto->writeStructEnd();
  proto->writeMessageEnd();
  raw.transport->flush();
  // Either an exception reply or a closed connection; never a result.
  bool rejected = false;
  try {
    hbase::TResult result;
    raw.client->recv_get(result);
  } catch (const at::TApplicationException&) {
    rejected = true;
  } catch (const at::transport::TTransportException&) {
    rejected = true;
  }
  EXPECT_TRUE(rejected);
  ExpectServes(*server, "after-missing-field");
}

// Found by fuzz/store_wire_fuzz: the binary protocol stored type bytes of
// the client's that are no TMessageType (in a non-strict header) or no
// TType (a field or container header) in enums that Thrift then compared:
// out-of-range enum loads, undefined behaviour (caught when this runs under
// UBSan). Each closes its connection, as any malformed call does, and the
// server carries on.
TEST(StoreServerTest, InvalidTypeBytesCloseTheConnection) {
  ServerProcess* server = SharedServer(ThriftTransport::kBuffered, ThriftProtocol::kBinary);
  ASSERT_NE(server, nullptr);
  const std::string strict_get("\x80\x01\x00\x01\0\0\0\x03get\0\0\0\0", 15);
  const std::string calls[] = {
      std::string("\0\0\0\x03get\x36\0\0\0\0", 12),               // message type 54
      strict_get + std::string("\xe2\x00\x01", 3),                // field type -30
      strict_get + std::string("\x0f\x00\x02\x90\0\0\0\x01", 8),  // list of type -112
  };
  for (const std::string& call : calls) {
    RawSocket raw(server->port);
    SEG_ASSERT_OK(raw);
    ASSERT_TRUE(raw.Send(call));
    EXPECT_TRUE(raw.WaitClosed(std::chrono::steady_clock::now() + 10s));
  }
  ExpectServes(*server, "after-bad-type-bytes");
}

// Found by fuzz/store_wire_fuzz: Thrift multiplied a container's claimed
// element count by the least element size in an int (here 252,896,715 x 9
// bytes for a map<double, string>), an overflow. A claim that cannot fit
// in store.server.max_message_bytes now closes the connection before that.
TEST(StoreServerTest, ContainerClaimsBeyondTheMessageLimitCloseTheConnection) {
  for (ThriftProtocol p : {ThriftProtocol::kCompact, ThriftProtocol::kBinary}) {
    ServerProcess* server = SharedServer(ThriftTransport::kBuffered, p);
    ASSERT_NE(server, nullptr);
    RawSocket raw(server->port);
    SEG_ASSERT_OK(raw);
    auto mem = std::make_shared<at::transport::TMemoryBuffer>();
    std::shared_ptr<at::protocol::TProtocol> proto;
    if (p == ThriftProtocol::kCompact) {
      proto = std::make_shared<at::protocol::TCompactProtocol>(mem);
    } else {
      proto = std::make_shared<at::protocol::TBinaryProtocol>(mem);
    }
    // put(table="users", tput={99: map<double, string> of 252,896,715}).
    proto->writeMessageBegin("put", at::protocol::T_CALL, 1);
    proto->writeStructBegin("put_args");
    proto->writeFieldBegin("table", at::protocol::T_STRING, 1);
    proto->writeBinary("users");
    proto->writeFieldEnd();
    proto->writeFieldBegin("tput", at::protocol::T_STRUCT, 2);
    proto->writeStructBegin("TPut");
    proto->writeFieldBegin("x", at::protocol::T_MAP, 99);
    proto->writeMapBegin(at::protocol::T_DOUBLE, at::protocol::T_STRING, 252896715);
    ASSERT_TRUE(raw.Send(mem->getBufferAsString()));
    EXPECT_TRUE(raw.WaitClosed(std::chrono::steady_clock::now() + 10s));
    ExpectServes(*server, "after-container-claim");
  }
}

// Found by fuzz/store_wire_fuzz: an enum field carries any i32 on the wire
// (here deleteType 40); the handler read it as the enum (undefined
// behaviour) before rejecting it. Now it is checked as an integer: a
// TIOError for the call, and the connection carries on.
TEST(StoreServerTest, UnknownEnumValueIsAnErrorForTheCall) {
  ServerProcess* server = SharedServer(ThriftTransport::kBuffered, ThriftProtocol::kBinary);
  ASSERT_NE(server, nullptr);
  RawClient raw(server->port);
  auto proto = std::make_shared<at::protocol::TBinaryProtocol>(raw.transport);
  // deleteSingle(table="users", tdelete={row="r", deleteType=40}), by hand:
  // the generated client cannot write an enum value it does not know.
  proto->writeMessageBegin("deleteSingle", at::protocol::T_CALL, 1);
  proto->writeStructBegin("deleteSingle_args");
  proto->writeFieldBegin("table", at::protocol::T_STRING, 1);
  proto->writeBinary("users");
  proto->writeFieldEnd();
  proto->writeFieldBegin("tdelete", at::protocol::T_STRUCT, 2);
  proto->writeStructBegin("TDelete");
  proto->writeFieldBegin("row", at::protocol::T_STRING, 1);
  proto->writeBinary("r");
  proto->writeFieldEnd();
  proto->writeFieldBegin("deleteType", at::protocol::T_I32, 4);
  proto->writeI32(40);
  proto->writeFieldEnd();
  proto->writeFieldStop();
  proto->writeStructEnd();
  proto->writeFieldEnd();
  proto->writeFieldStop();
  proto->writeStructEnd();
  proto->writeMessageEnd();
  raw.transport->flush();
  try {
    raw.client->recv_deleteSingle();
    ADD_FAILURE() << "deleteType 40 was accepted";
  } catch (const hbase::TIOError& e) {
    EXPECT_NE(e.message.find("unknown delete type"), std::string::npos) << e.message;
  }
  // The same connection still serves.
  hbase::TResult result;
  hbase::TGet get;
  get.__set_row("r");
  raw.client->get(result, "users", get);
  ExpectServes(*server, "after-unknown-enum");
}

// What a hostile client tried (issue #17): ~500 short connections of random
// bytes and truncated calls took seg-store from 31 MB to 650 MB of RSS,
// since Thrift sized strings from their claimed length. Default config.
TEST(StoreServerTest, RandomBytesAndVanishingClientsDoNotStopTheServerNorGrowIt) {
  ServerProcess server;
  server.metrics_port = seg::testing::PickFreePort();
  SEG_ASSERT_OK(server.Start()) << server.log();
  SEG_ASSERT_OK(seg::testing::WaitForTcpPort(server.metrics_port, 10s));
  const int64_t threads0 = ProcField(server, "Threads");
  ExpectServes(server, "warm-up");
  ASSERT_TRUE(WaitNoClients(server, threads0));
  const int64_t rss0 = ProcField(server, "VmRSS"), hwm0 = ProcField(server, "VmHWM");

  // A well-formed putMultiple to truncate: a client dying mid-call.
  auto mem = std::make_shared<at::transport::TMemoryBuffer>();
  {
    hbase::THBaseServiceClient c(std::make_shared<at::protocol::TBinaryProtocol>(mem));
    std::vector<hbase::TPut> puts(50);
    for (auto& p : puts) {
      p.row = "row";
      hbase::TColumnValue cv;
      cv.family = "a";
      cv.qualifier = "q";
      cv.value = std::string(100, 'v');
      p.columnValues.push_back(cv);
    }
    c.send_putMultiple("t", puts);
  }
  std::string valid = mem->getBufferAsString();

  std::atomic<bool> good_client_ok{true};
  std::atomic<bool> stop{false};
  // Other clients carry on while the garbage arrives.
  std::thread good([&] {
    auto store = ClientFor(server);
    for (int i = 0; !stop; ++i) {
      std::string row = "good" + std::to_string(i % 50);
      if (!store->Put("t", {{row, {Cell{"a", "q", 1, "v"}}}}).ok()) good_client_ok = false;
    }
  });
  std::mt19937 rng(1234);
  for (int i = 0; i < 500; ++i) {
    std::string bytes;
    switch (i % 4) {
      case 0:  // pure noise
        bytes.resize(1 + rng() % 2048);
        for (auto& b : bytes) b = static_cast<char>(rng());
        break;
      case 1:  // a valid call cut short
        bytes = valid.substr(0, rng() % valid.size());
        break;
      case 2:  // a valid header, then noise (huge lengths, bad types)
        bytes = valid.substr(0, 20);
        for (int k = 0; k < 200; ++k) bytes.push_back(static_cast<char>(rng()));
        break;
      default:  // a valid call with a few bytes flipped
        bytes = valid;
        for (int k = 0; k < 5; ++k) bytes[rng() % bytes.size()] = static_cast<char>(rng());
        break;
    }
    RawSocket raw(server.port);
    SEG_ASSERT_OK(raw);
    (void)raw.Send(bytes);  // the server may close first; that is fine
  }
  stop = true;
  good.join();
  EXPECT_TRUE(good_client_ok);
  EXPECT_TRUE(server.child.running());
  // Every connection's thread has finished with it before RSS is read.
  ASSERT_TRUE(WaitNoClients(server, threads0)) << ProcField(server, "Threads") << " threads";
  const int64_t rss1 = ProcField(server, "VmRSS"), hwm1 = ProcField(server, "VmHWM");
  std::cout << "seg-store RSS " << rss0 / 1024 << " MB -> " << rss1 / 1024
            << " MB after 500 hostile connections; peak " << hwm0 / 1024 << " MB -> " << hwm1 / 1024
            << " MB\n";
  RecordProperty("rss_before_kb", std::to_string(rss0));
  RecordProperty("rss_after_kb", std::to_string(rss1));
  RecordProperty("hwm_after_kb", std::to_string(hwm1));
  EXPECT_LT(rss1, rss0 + 32 * 1024) << "kB";
  EXPECT_LT(hwm1, hwm0 + 32 * 1024) << "kB";
  ExpectServes(server, "after-fuzz");
}

// Mutated calls on every transport x protocol (each decodes lengths its own
// way): putMultiple/getMultiple with byte flips, truncations, and random
// length fields; the server keeps serving and a client on each combination
// is answered throughout.
TEST(StoreServerTest, MutatedCallsOnEveryTransportAndProtocol) {
  for (auto t : {ThriftTransport::kBuffered, ThriftTransport::kFramed}) {
    for (auto p : {ThriftProtocol::kBinary, ThriftProtocol::kCompact}) {
      SCOPED_TRACE(std::string(Name(t)) + "_" + Name(p));
      ServerProcess server;
      server.transport = t;
      server.protocol = p;
      SEG_ASSERT_OK(server.Start()) << server.log();
      std::vector<std::string> valid;
      for (int call = 0; call < 2; ++call) {
        auto mem = std::make_shared<at::transport::TMemoryBuffer>();
        std::shared_ptr<at::transport::TTransport> tr = mem;
        if (t == ThriftTransport::kFramed)
          tr = std::make_shared<at::transport::TFramedTransport>(mem);
        std::shared_ptr<at::protocol::TProtocol> proto;
        if (p == ThriftProtocol::kCompact) {
          proto = std::make_shared<at::protocol::TCompactProtocol>(tr);
        } else {
          proto = std::make_shared<at::protocol::TBinaryProtocol>(tr);
        }
        hbase::THBaseServiceClient c(proto);
        if (call == 0) {
          std::vector<hbase::TPut> puts;
          for (int i = 0; i < 300; ++i) puts.push_back(PutOf("m" + std::to_string(i), "value"));
          c.send_putMultiple("t", puts);
        } else {
          std::vector<hbase::TGet> gets(300);
          for (int i = 0; i < 300; ++i) gets[i].row = "m" + std::to_string(i);
          c.send_getMultiple("t", gets);
        }
        valid.push_back(mem->getBufferAsString());
      }
      RawClient good(server.port, t, p);
      std::mt19937 rng(77);
      for (int i = 0; i < 200; ++i) {
        std::string bytes = valid[i % 2];
        switch (i % 3) {
          case 0:  // flipped bytes
            for (int k = 0; k < 1 + static_cast<int>(rng() % 8); ++k) {
              bytes[rng() % bytes.size()] = static_cast<char>(rng());
            }
            break;
          case 1:  // cut short
            bytes.resize(rng() % bytes.size());
            break;
          default: {  // a random 32-bit value written over 4 bytes (lengths, counts)
            size_t at = rng() % (bytes.size() - 4);
            uint32_t v = static_cast<uint32_t>(rng());
            std::memcpy(&bytes[at], &v, 4);
            break;
          }
        }
        RawSocket raw(server.port);
        SEG_ASSERT_OK(raw);
        (void)raw.Send(bytes);
        if (i % 20 == 0) {
          hbase::TGet g;
          g.row = "m1";
          hbase::TResult r;
          ASSERT_NO_THROW(good.client->get(r, "t", g));
        }
      }
      EXPECT_TRUE(server.child.running());
      ExpectServes(server, "after-mutations");
    }
  }
}

// Claimed lengths with nothing behind them: a string within the limit, one
// over it, and a list of a million TPuts. Each connection then goes silent
// until the server closes it (idle timeout), so its thread has read the
// claim by then; the server's peak RSS (VmHWM) shows whether anything was
// allocated for it. Thrift's own protocol would have allocated (and
// zero-filled) 16 x 9 MB + 4 x 200 MB + 4 x 184 MB here.
TEST(StoreServerTest, ClaimedLengthsAreNotAllocatedBeforeTheBytesArrive) {
  ServerProcess server;
  // client_idle_timeout_ms: also known to older seg-store builds.
  SEG_ASSERT_OK(server.Start("client_idle_timeout_ms: 1000\n")) << server.log();
  ExpectServes(server, "warm-up");
  const int64_t hwm0 = ProcField(server, "VmHWM");
  std::vector<std::unique_ptr<RawSocket>> hostile;
  auto claim = [&](const std::string& bytes) {
    hostile.push_back(std::make_unique<RawSocket>(server.port));
    ASSERT_TRUE(hostile.back()->ok());
    ASSERT_TRUE(hostile.back()->Send(bytes));
  };
  for (int i = 0; i < 16; ++i) claim(ClaimedStringCall("put", 9 << 20));
  for (int i = 0; i < 4; ++i) claim(ClaimedStringCall("put", 200 << 20));
  for (int i = 0; i < 4; ++i) claim(ClaimedListCall(1 << 20));
  ExpectServes(server, "during-claims");  // other clients are served meanwhile
  auto deadline = std::chrono::steady_clock::now() + 30s;
  for (auto& h : hostile) EXPECT_TRUE(h->WaitClosed(deadline)) << "a claim was never closed";
  const int64_t hwm1 = ProcField(server, "VmHWM");
  std::cout << "seg-store peak RSS " << hwm0 / 1024 << " MB -> " << hwm1 / 1024
            << " MB after 24 connections claiming 1.7 GB\n";
  EXPECT_LT(hwm1, hwm0 + 32 * 1024) << "kB";
  ExpectServes(server, "after-claims");
}

// Per-request limits answer that request with a TIOError naming the key
// and leave the connection in step: the next call on it works. Every
// transport x protocol, since each decodes lengths its own way.
TEST(StoreServerTest, OverLimitRequestsAreRefusedAndTheConnectionCarriesOn) {
  for (auto t : {ThriftTransport::kBuffered, ThriftTransport::kFramed}) {
    for (auto p : {ThriftProtocol::kBinary, ThriftProtocol::kCompact}) {
      SCOPED_TRACE(std::string(Name(t)) + "_" + Name(p));
      ServerProcess server;
      server.transport = t;
      server.protocol = p;
      SEG_ASSERT_OK(server.Start("max_string_bytes: 1024\nmax_rows_per_request: 100\n"))
          << server.log();
      RawClient raw(server.port, t, p);

      // A value over max_string_bytes: refused, nothing written.
      std::string err =
          IoErrorOf([&] { raw.client->put("t", PutOf("big", std::string(5000, 'x'))); });
      EXPECT_NE(err.find("store.server.max_string_bytes (1024)"), std::string::npos) << err;
      EXPECT_NE(err.find("5000 bytes"), std::string::npos) << err;
      EXPECT_EQ(GetValue(raw, "big"), "");                         // same connection
      raw.client->put("t", PutOf("big", std::string(1024, 'y')));  // at the limit
      EXPECT_EQ(GetValue(raw, "big"), std::string(1024, 'y'));

      // Rows over max_rows_per_request: putMultiple, getMultiple, deleteMultiple.
      std::vector<hbase::TPut> puts;
      for (int i = 0; i < 101; ++i) puts.push_back(PutOf("r" + std::to_string(i), "v"));
      err = IoErrorOf([&] { raw.client->putMultiple("t", puts); });
      EXPECT_NE(err.find("101 rows exceed store.server.max_rows_per_request (100)"),
                std::string::npos)
          << err;
      EXPECT_EQ(GetValue(raw, "r0"), "");
      puts.pop_back();
      raw.client->putMultiple("t", puts);  // 100: at the limit
      EXPECT_EQ(GetValue(raw, "r99"), "v");

      std::vector<hbase::TGet> gets(101);
      for (int i = 0; i < 101; ++i) gets[i].row = "r" + std::to_string(i);
      std::vector<hbase::TResult> results;
      err = IoErrorOf([&] { raw.client->getMultiple(results, "t", gets); });
      EXPECT_NE(err.find("store.server.max_rows_per_request"), std::string::npos) << err;
      gets.pop_back();
      raw.client->getMultiple(results, "t", gets);
      EXPECT_EQ(results.size(), 100u);

      std::vector<hbase::TDelete> dels(101);
      for (int i = 0; i < 101; ++i) dels[i].row = "r" + std::to_string(i);
      std::vector<hbase::TDelete> left;
      err = IoErrorOf([&] { raw.client->deleteMultiple(left, "t", dels); });
      EXPECT_NE(err.find("store.server.max_rows_per_request"), std::string::npos) << err;
      EXPECT_EQ(GetValue(raw, "r5"), "v");

      // A scanner batch over the limit; then a batch at it.
      hbase::TScan scan;
      scan.__set_startRow("r");
      scan.__set_stopRow("s");
      int32_t id = raw.client->openScanner("t", scan);
      err = IoErrorOf([&] { raw.client->getScannerRows(results, id, 101); });
      EXPECT_NE(err.find("numRows 101 exceeds store.server.max_rows_per_request"),
                std::string::npos)
          << err;
      raw.client->getScannerRows(results, id, 100);
      EXPECT_EQ(results.size(), 100u);
      raw.client->closeScanner(id);

      // Columns of one row are not rows: 1000 cells in one put pass.
      hbase::TPut wide;
      wide.row = "wide";
      for (int i = 0; i < 1000; ++i) {
        hbase::TColumnValue cv;
        cv.family = "a";
        cv.qualifier = "q" + std::to_string(i);
        cv.value = "v";
        wide.columnValues.push_back(cv);
      }
      raw.client->put("t", wide);

      // Our client sees InvalidArgument, and its pooled connection lives on.
      auto store = ClientFor(server);
      std::vector<RowPut> rows;
      for (int i = 0; i < 101; ++i)
        rows.push_back({"s" + std::to_string(i), {Cell{"a", "q", 1, "v"}}});
      Status st = store->Put("t", rows);
      EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st;
      EXPECT_NE(st.ToString().find("store.server.max_rows_per_request"), std::string::npos) << st;
      rows.pop_back();
      SEG_EXPECT_OK(store->Put("t", rows));
    }
  }
}

// A request that does not arrive in time, and one over max_message_bytes,
// close that connection (a byte stream cannot be resynchronised); a frame
// header claiming too much is refused before anything else is read.
TEST(StoreServerTest, SlowAndOversizedRequestsCloseTheirConnection) {
  ServerProcess server;
  SEG_ASSERT_OK(
      server.Start("request_timeout_ms: 500\nmax_message_bytes: 65536\n"
                   "max_string_bytes: 1048576\n"))
      << server.log();
  auto deadline = [] { return std::chrono::steady_clock::now() + 10s; };
  // Over max_message_bytes (a 100 KB value in a 64 KB request).
  {
    RawSocket raw(server.port);
    SEG_ASSERT_OK(raw);
    auto mem = std::make_shared<at::transport::TMemoryBuffer>();
    hbase::THBaseServiceClient c(std::make_shared<at::protocol::TBinaryProtocol>(mem));
    c.send_put("t", PutOf("too-big", std::string(100 << 10, 'x')));
    (void)raw.Send(mem->getBufferAsString());
    EXPECT_TRUE(raw.WaitClosed(deadline()));
  }
  // A request cut short and then silent: closed after request_timeout_ms,
  // although the idle timeout (60 s) has not passed.
  {
    RawSocket raw(server.port);
    SEG_ASSERT_OK(raw);
    auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(raw.Send(ClaimedStringCall("put", 100)));
    EXPECT_TRUE(raw.WaitClosed(deadline()));
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  }
  ExpectServes(server, "after-slow");

  ServerProcess framed;
  framed.transport = ThriftTransport::kFramed;
  SEG_ASSERT_OK(framed.Start("max_message_bytes: 65536\n")) << framed.log();
  RawSocket raw(framed.port);
  SEG_ASSERT_OK(raw);
  ASSERT_TRUE(raw.Send(std::string("\x7f\xff\xff\xff", 4)));  // a 2 GB frame, nothing after
  EXPECT_TRUE(raw.WaitClosed(deadline()));
  ExpectServes(framed, "after-frame");
}

// Bounded threads: at most max_connections clients are served at once;
// further connections wait in the listen backlog. A client stalled in the
// middle of a request is closed after client_idle_timeout_ms without a
// byte, and a trickling one (a byte every 100 ms, never idle) after
// request_timeout_ms, so a well-behaved client that connects while 14 of
// them hold or queue for all four threads is served within a few rounds of
// those timeouts. (A connection that sends nothing at all is not even
// handed to the server for its first second: Thrift's listening socket
// sets TCP_DEFER_ACCEPT.)
TEST(StoreServerTest, SlowClientsCannotHoldTheThreads) {
  ServerProcess server;
  server.metrics_port = seg::testing::PickFreePort();
  SEG_ASSERT_OK(
      server.Start("max_connections: 4\nclient_idle_timeout_ms: 500\n"
                   "request_timeout_ms: 1000\n"))
      << server.log();
  auto connections = [&] { return Connections(server); };
  // The baseline: no client being served (Start()'s probe has gone). The
  // probe connects and closes without a byte, so with TCP_DEFER_ACCEPT the
  // server may take it a little later and drop it at once: a second read
  // could see it, which is why the loop's own read is the one that counts.
  double baseline = -1;
  EXPECT_TRUE(seg::testing::PollUntil([&] { return (baseline = connections()) == 0; }, 10s,
                                      "no connections", 5ms));
  ASSERT_EQ(baseline, 0);
  const int64_t threads0 = ProcField(server, "Threads");

  auto mem = std::make_shared<at::transport::TMemoryBuffer>();
  {
    hbase::THBaseServiceClient c(std::make_shared<at::protocol::TBinaryProtocol>(mem));
    c.send_put("t", PutOf("slow", std::string(200, 'x')));
  }
  const std::string request = mem->getBufferAsString();
  // Twelve clients send the first bytes of a request and stop.
  std::vector<std::unique_ptr<RawSocket>> stalled;
  for (int i = 0; i < 12; ++i) {
    stalled.push_back(std::make_unique<RawSocket>(server.port));
    ASSERT_TRUE(stalled.back()->ok());
    ASSERT_TRUE(stalled.back()->Send(request.substr(0, 10)));
  }
  // Two send a byte every 100 ms (the whole request would take 27 s).
  std::atomic<int> trickled_closed{0};
  const auto give_up = std::chrono::steady_clock::now() + 20s;
  std::vector<std::jthread> tricklers;
  for (int i = 0; i < 2; ++i) {
    tricklers.emplace_back([&] {
      RawSocket raw(server.port);
      if (!raw.ok()) return;
      // The behaviour under test is the client's slowness.
      for (size_t b = 0; b < request.size() && std::chrono::steady_clock::now() < give_up; ++b) {
        if (!raw.Send(std::string_view(request).substr(b, 1))) {
          ++trickled_closed;
          return;
        }
        pollfd p{};
        p.fd = raw.fd;
        p.events = POLLRDHUP;
        if (poll(&p, 1, 100) > 0) {  // closed by the server
          ++trickled_closed;
          return;
        }
      }
    });
  }
  // Every slot taken before the well-behaved client connects.
  EXPECT_TRUE(seg::testing::PollUntil([&] { return connections() >= 4; }, 10s,
                                      "every slow client served", 5ms));
  std::atomic<bool> served{false};
  auto start = std::chrono::steady_clock::now();
  std::jthread good([&] {
    ThriftClientOptions o = server.ClientOptions();
    o.call_timeout_ms = 30000;
    o.max_attempts = 1;
    StoreOptions so;
    so.backend = StoreOptions::Backend::kThrift;
    so.thrift = o;
    auto store = std::move(*OpenStore(so));
    if (!store->Put("t", {{"good", {Cell{"a", "q", 1, "served"}}}}).ok()) return;
    GetRequest g;
    g.row = "good";
    auto r = store->Get("t", g);
    served = r.ok() && r->size() == 1 && r->cell(0).value == "served";
  });
  // While it waits: never more than four clients, nor four client threads.
  double max_connections = 0;
  int64_t max_threads = 0;
  EXPECT_TRUE(seg::testing::PollUntil(
      [&] {
        if (served) return true;
        max_connections = std::max(max_connections, connections());
        max_threads = std::max(max_threads, ProcField(server, "Threads"));
        return served.load();
      },
      25s, "the well-behaved client served", 20ms));  // samples every 20 ms meanwhile
  good.join();
  auto waited = std::chrono::steady_clock::now() - start;
  for (auto& t : tricklers) t.join();  // they end when the server closes them
  EXPECT_TRUE(served) << "a well-behaved client was not served";
  EXPECT_GT(waited, 300ms) << "it was served although every thread was taken";
  EXPECT_LT(waited, 15s);
  EXPECT_LE(max_connections, 4);
  EXPECT_LE(max_threads, threads0 + 4) << "threads with no client: " << threads0;
  EXPECT_EQ(trickled_closed, 2) << "trickling clients were not closed";
  auto deadline = std::chrono::steady_clock::now() + 10s;
  for (auto& s : stalled) EXPECT_TRUE(s->WaitClosed(deadline));
  std::cout << "well-behaved client served after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()
            << " ms behind 14 slow clients; server threads " << threads0 << " -> at most "
            << max_threads << ", clients at most " << max_connections << "\n";
}

// The server closes idle clients (60 s by default, as HBase's gateway): a
// pooled connection it closed is noticed by the client before the next
// call, so calls that are never retried (checkAndMutate, scanner batches)
// do not fail on it.
TEST(StoreServerTest, ClientReplacesPooledConnectionsTheServerClosed) {
  ServerProcess server;
  server.metrics_port = seg::testing::PickFreePort();
  SEG_ASSERT_OK(server.Start("client_idle_timeout_ms: 200\n")) << server.log();
  SEG_ASSERT_OK(seg::testing::WaitForTcpPort(server.metrics_port, 10s));
  const int64_t threads0 = ProcField(server, "Threads");
  ThriftClientOptions o = server.ClientOptions();
  o.max_connections = 1;
  StoreOptions so;
  so.backend = StoreOptions::Backend::kThrift;
  so.thrift = o;
  auto store = std::move(*OpenStore(so));
  for (int round = 0; round < 2; ++round) {
    SEG_ASSERT_OK(store->Put("t", {{"cam", {Cell{"a", "q", 1, "v" + std::to_string(round)}}}}));
    ASSERT_TRUE(WaitNoClients(server, threads0)) << "the server kept the idle connection";
    Condition c;
    c.family = "a";
    c.qualifier = "q";
    c.value = "v" + std::to_string(round);
    RowMutations m;
    m.row = "cam";
    m.puts.push_back(Cell{"a", "r", 1, "x"});
    auto applied = store->CheckAndMutate("t", c, m);
    SEG_ASSERT_OK(applied);
    EXPECT_TRUE(*applied);
    ASSERT_TRUE(WaitNoClients(server, threads0));
    ScanRequest scan;
    scan.start_row = "cam";
    auto scanner = store->OpenScanner("t", scan);
    SEG_ASSERT_OK(scanner);
    ASSERT_TRUE(WaitNoClients(server, threads0));
    std::vector<RowResult> rows;
    Status st = (*scanner)->NextBatch(&rows);
    SEG_ASSERT_OK(st);
    EXPECT_FALSE(rows.empty());
  }
}

// seg-store forgets a scanner idle past server.scanner_lease_ms when it is
// next asked for (as HBase's gateway does), and the client resumes the scan
// on a new scanner after the last row it received.
TEST(StoreServerTest, ScanResumesAfterTheServerForgetsItsScanner) {
  ServerProcess server;
  SEG_ASSERT_OK(server.Start("scanner_lease_ms: 300\n")) << server.log();
  StoreOptions so;
  so.backend = StoreOptions::Backend::kThrift;
  so.thrift = server.ClientOptions();
  auto store = OpenStore(so);
  SEG_ASSERT_OK(store);
  ExpectScanResumesAfterScannerExpiry(store->get(), "t", "a", "lease|", 900ms);
}

// Every listener of seg-store binds loopback unless told otherwise.
TEST(StoreServerTest, ListenersBindLoopbackByDefault) {
  StoreServerOptions defaults;
  EXPECT_EQ(defaults.bind_address, "127.0.0.1");
  EXPECT_EQ(metrics::MetricsListenOptions().host, "127.0.0.1");

  const int metrics_port = seg::testing::PickFreePort();
  ServerProcess server;
  SEG_ASSERT_OK(server.Start("", {"--metrics-port", std::to_string(metrics_port)})) << server.log();
  SEG_ASSERT_OK(seg::testing::WaitForTcpPort(metrics_port, 10s));
  EXPECT_EQ(seg::testing::ListeningAddresses(server.port), std::vector<std::string>{"127.0.0.1"});
  EXPECT_EQ(seg::testing::ListeningAddresses(metrics_port), std::vector<std::string>{"127.0.0.1"});

  // One key per listener moves it.
  const int metrics_port2 = seg::testing::PickFreePort();
  ServerProcess wide;
  SEG_ASSERT_OK(
      wide.Start("bind_address: 0.0.0.0\nmetrics_host: 0.0.0.0\n"
                 "metrics_port: " +
                 std::to_string(metrics_port2) + "\n"))
      << wide.log();
  SEG_ASSERT_OK(seg::testing::WaitForTcpPort(metrics_port2, 10s));
  EXPECT_EQ(seg::testing::ListeningAddresses(wide.port), std::vector<std::string>{"0.0.0.0"});
  EXPECT_EQ(seg::testing::ListeningAddresses(metrics_port2), std::vector<std::string>{"0.0.0.0"});
}

TEST(StoreServerTest, AcknowledgedWritesSurviveKill9) {
  ServerProcess server;
  SEG_ASSERT_OK(server.Start()) << server.log();
  std::mutex mutex;
  std::vector<std::string> acked;  // rows whose put returned OK
  std::atomic<int> total{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < 2; ++w) {
    writers.emplace_back([&, w] {
      ThriftClientOptions o = server.ClientOptions();
      o.max_attempts = 1;  // after the kill, fail fast
      StoreOptions so;
      so.backend = StoreOptions::Backend::kThrift;
      so.thrift = o;
      auto store = std::move(*OpenStore(so));
      for (int i = 0; !stop; ++i) {
        std::string row = "w" + std::to_string(w) + "-" + std::to_string(i);
        RowPut p{row, {Cell{"a", "q", 1, row}, Cell{"a", "r", 2, row}}};
        if (!store->Put("t", {p}).ok()) break;
        std::lock_guard<std::mutex> lock(mutex);
        acked.push_back(row);
        ++total;
      }
    });
  }
  EXPECT_TRUE(
      seg::testing::PollUntil([&] { return total >= 500; }, 20s, "500 acknowledged puts", 1ms));
  server.child.Signal(SIGKILL);  // mid-stream, right after acknowledgements
  SEG_ASSERT_OK(server.child.Wait(10s));
  stop = true;
  for (auto& t : writers) t.join();
  ASSERT_GE(acked.size(), 500u);

  SEG_ASSERT_OK(server.Start()) << server.log();  // same data dir
  auto store = ClientFor(server);
  std::vector<GetRequest> gets;
  for (const auto& row : acked) {
    GetRequest g;
    g.row = row;
    gets.push_back(g);
  }
  std::vector<RowResult> results;
  SEG_ASSERT_OK(store->MultiGet("t", gets, &results));
  size_t missing = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].size() != 2u || results[i].cell(0).value != acked[i]) ++missing;
  }
  EXPECT_EQ(missing, 0u) << "of " << acked.size() << " acknowledged rows";
}

TEST(StoreServerTest, SigtermStopsCleanlyWithClientsConnected) {
  ServerProcess server;
  SEG_ASSERT_OK(server.Start());
  auto store = ClientFor(server);  // leaves an idle pooled connection open
  ExpectServes(server, "x");
  RawClient idle(server.port);
  server.child.Signal(SIGTERM);
  auto code = server.child.Wait(15s);
  SEG_ASSERT_OK(code) << "seg-store did not stop on SIGTERM";
  EXPECT_EQ(*code, 0);
}

TEST(StoreServerTest, UnknownConfigKeyFailsStartup) {
  seg::testing::TempDir dir;
  std::string config = dir.path() + "/bad.yaml";
  {
    std::ofstream out(config);
    out << "store:\n  data_dirr: /tmp/x\n";
  }
  auto child = seg::testing::ChildProcess::Start(
      {SegStoreBinary(), "--config", config, "--data-dir", dir.path() + "/db", "--port", "0"},
      dir.path() + "/log");
  SEG_ASSERT_OK(child);
  auto code = child->Wait(15s);
  SEG_ASSERT_OK(code);
  EXPECT_EQ(*code, 2);
}

class CountingObserver : public WriteObserver {
 public:
  void OnCommitted(const std::vector<RowChange>& changes) override {
    std::lock_guard<std::mutex> lock(mutex);
    for (const auto& c : changes) rows.push_back(c);
  }
  std::mutex mutex;
  std::vector<RowChange> rows;
};

TEST(StoreServerTest, ObserversRegisteredBeforeStartSeeEveryCommittedPut) {
  seg::testing::TempDir dir;
  StoreServerOptions o;
  o.port = 0;
  o.store.data_dir = dir.path() + "/db";
  o.store.tables = ContractTables();
  auto server = StoreServer::Create(o);
  SEG_ASSERT_OK(server);
  auto observer = std::make_shared<CountingObserver>();
  (*server)->AddObserver(observer);
  SEG_ASSERT_OK((*server)->Start());
  ThriftClientOptions co;
  co.port = (*server)->port();
  StoreOptions so;
  so.backend = StoreOptions::Backend::kThrift;
  so.thrift = co;
  auto client = std::move(*OpenStore(so));
  SEG_ASSERT_OK(
      client->Put("users", {{"u1", {Cell{"e", "ev1", 100, "x"}, Cell{"e", "ev2", 200, "y"}}},
                            {"u2", {Cell{"s", "state", 50, "z"}}}}));
  {
    // The observer ran before the put was acknowledged.
    std::lock_guard<std::mutex> lock(observer->mutex);
    ASSERT_EQ(observer->rows.size(), 2u);
    EXPECT_EQ(observer->rows[0].row, "u1");
    EXPECT_EQ(observer->rows[0].newest_timestamp, 200);
    EXPECT_EQ(observer->rows[0].cell_count, 2);
    EXPECT_EQ(observer->rows[1].row, "u2");
  }
  EXPECT_NE(metrics::RenderText().find("seg_store_server_calls_total"), std::string::npos);
  (*server)->Stop();
}

TEST(StoreServerTest, ManyConcurrentClientsCarryOn) {
  ServerProcess* server = SharedServer(ThriftTransport::kFramed, ThriftProtocol::kCompact);
  ASSERT_NE(server, nullptr);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      auto store = ClientFor(*server);
      for (int i = 0; i < 50; ++i) {
        std::string row = "cc" + std::to_string(t) + "-" + std::to_string(i);
        if (!store->Put("t", {{row, {Cell{"a", "q", 1, row}}}}).ok()) ++failures;
        GetRequest g;
        g.row = row;
        auto r = store->Get("t", g);
        if (!r.ok() || r->size() != 1 || r->cell(0).value != row) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, 0);
}

// Servers started and Thrift clients opened from several threads at once.
// Each constructor used to set Thrift's process-wide output hook
// (GlobalOutput), a data race that only a TSan build reports (tools/dev build
// tsan); elsewhere this checks that every store opened this way serves.
TEST(StoreServerTest, StoresOpenedConcurrentlyFromSeveralThreads) {
  seg::testing::TempDir dir;
  auto make_server = [&](const std::string& name) -> std::unique_ptr<StoreServer> {
    StoreServerOptions o;
    o.port = 0;
    o.store.data_dir = dir.path() + "/" + name;
    o.store.tables = ContractTables();
    auto server = StoreServer::Create(o);
    SEG_EXPECT_OK(server);
    return server.ok() ? std::move(*server) : nullptr;
  };
  auto served = make_server("served");
  ASSERT_NE(served, nullptr);
  SEG_ASSERT_OK(served->Start());

  constexpr int kServers = 2, kClients = 6;
  std::vector<std::unique_ptr<StoreServer>> servers;
  for (int i = 0; i < kServers; ++i) {
    servers.push_back(make_server("s" + std::to_string(i)));
    ASSERT_NE(servers.back(), nullptr);
  }
  std::latch go(kServers + kClients);
  std::vector<std::thread> threads;
  for (int i = 0; i < kServers; ++i) {
    threads.emplace_back([&, i] {
      go.arrive_and_wait();
      Status started = servers[i]->Start();
      SEG_EXPECT_OK(started);
    });
  }
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      StoreOptions so;
      so.backend = StoreOptions::Backend::kThrift;
      so.thrift.port = served->port();
      go.arrive_and_wait();
      auto store = OpenStore(so);
      if (!store.ok()) {
        ADD_FAILURE() << store.status();
        return;
      }
      std::string row = "concurrent-" + std::to_string(t);
      Status put = (*store)->Put("t", {{row, {Cell{"a", "q", 1, row}}}});
      SEG_EXPECT_OK(put);
      GetRequest g;
      g.row = row;
      auto r = (*store)->Get("t", g);
      EXPECT_TRUE(r.ok() && r->size() == 1 && r->cell(0).value == row)
          << (r.ok() ? std::to_string(r->size()) + " cells" : r.status().ToString());
    });
  }
  for (auto& th : threads) th.join();
  for (auto& server : servers) server->Stop();
  served->Stop();
}

TEST(StoreServerTest, UnreachableServerIsUnavailableStatusNotException) {
  ServerProcess server;
  SEG_ASSERT_OK(server.Start());
  auto store = ClientFor(server);
  ExpectServes(server, "before");
  SEG_ASSERT_OK(store->Put("t", {{"k", {Cell{"a", "q", 1, "v"}}}}));
  // Unreachable: Unavailable after the configured attempts, no exception.
  server.child.Signal(SIGKILL);
  SEG_ASSERT_OK(server.child.Wait(10s));
  GetRequest g;
  g.row = "k";
  auto r = store->Get("t", g);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status();
}

}  // namespace
}  // namespace seg::store::testing
