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

#include <atomic>
#include <chrono>
#include <fstream>
#include <latch>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "common/metrics.h"
#include "proto/THBaseService.h"
#include "store/internal/raw_wire_contract.h"
#include "store/internal/store_contract.h"
#include "store/store_server.h"
#include "tests/harness/process.h"

namespace seg::store::testing {
namespace {

using namespace std::chrono_literals;
namespace at = apache::thrift;

// seg-store is built next to this test binary (store/); found from our own
// path so it works whatever ctest passes in the environment.
std::string SegStoreBinary() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n > 0) {
    std::string self(buf, static_cast<size_t>(n));
    return self.substr(0, self.rfind('/')) + "/seg-store";
  }
  return seg::testing::BinaryDir() + "/store/seg-store";
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
  ThriftTransport transport = ThriftTransport::kBuffered;
  ThriftProtocol protocol = ThriftProtocol::kBinary;

  std::string data_dir() const { return dir.path() + "/db"; }
  std::string log() const { return dir.path() + "/seg-store.log"; }

  Status Start(const std::string& extra_yaml = "") {
    std::string config = dir.path() + "/seg-store.yaml";
    std::string port_file = dir.path() + "/port";
    std::remove(port_file.c_str());
    {
      std::ofstream out(config);
      out << ContractTablesYaml() << extra_yaml;
    }
    SEG_ASSIGN_OR_RETURN(child, seg::testing::ChildProcess::Start(
                                    {SegStoreBinary(), "--config", config, "--data-dir", data_dir(),
                                     "--port", "0", "--port-file", port_file, "--transport",
                                     Name(transport), "--protocol", Name(protocol)},
                                    log()));
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (true) {
      std::ifstream in(port_file);
      if (in >> port) break;
      if (!child.running()) return InternalError("seg-store exited; see " + log());
      if (std::chrono::steady_clock::now() > deadline) return DeadlineExceededError("no port file");
      std::this_thread::sleep_for(5ms);  // polling a file the child writes: nothing to block on
    }
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
    EXPECT_TRUE(st.ok()) << st;
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
    EXPECT_TRUE(s.ok()) << s.status();
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
  explicit RawClient(int port) {
    socket = std::make_shared<at::transport::TSocket>("127.0.0.1", port);
    socket->setRecvTimeout(10000);
    transport = std::make_shared<at::transport::TBufferedTransport>(socket);
    client = std::make_unique<hbase::THBaseServiceClient>(
        std::make_shared<at::protocol::TBinaryProtocol>(transport));
    transport->open();
  }
};

std::unique_ptr<Store> ClientFor(const ServerProcess& server) {
  StoreOptions o;
  o.backend = StoreOptions::Backend::kThrift;
  o.thrift = server.ClientOptions();
  auto s = OpenStore(o);
  EXPECT_TRUE(s.ok());
  return s.ok() ? std::move(*s) : nullptr;
}

// The server answers a put + get after whatever the test did to it.
void ExpectServes(const ServerProcess& server, const std::string& row) {
  auto store = ClientFor(server);
  ASSERT_TRUE(store->Put("t", {{row, {Cell{"a", "q", 1, "alive"}}}}).ok());
  GetRequest g;
  g.row = row;
  auto r = store->Get("t", g);
  ASSERT_TRUE(r.ok()) << r.status();
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

TEST(StoreServerTest, RandomBytesAndVanishingClientsDoNotStopTheServer) {
  ServerProcess server;
  ASSERT_TRUE(server.Start().ok()) << server.log();
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
  for (int i = 0; i < 300; ++i) {
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
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(server.port);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ssize_t sent = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    (void)sent;  // the server may close first; that is fine
    close(fd);
  }
  stop = true;
  good.join();
  EXPECT_TRUE(good_client_ok);
  EXPECT_TRUE(server.child.running());
  ExpectServes(server, "after-fuzz");
}

TEST(StoreServerTest, AcknowledgedWritesSurviveKill9) {
  ServerProcess server;
  ASSERT_TRUE(server.Start().ok()) << server.log();
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
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (total < 500 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);  // waiting for progress made by other threads
  }
  server.child.Signal(SIGKILL);  // mid-stream, right after acknowledgements
  ASSERT_TRUE(server.child.Wait(10s).ok());
  stop = true;
  for (auto& t : writers) t.join();
  ASSERT_GE(acked.size(), 500u);

  ASSERT_TRUE(server.Start().ok()) << server.log();  // same data dir
  auto store = ClientFor(server);
  std::vector<GetRequest> gets;
  for (const auto& row : acked) {
    GetRequest g;
    g.row = row;
    gets.push_back(g);
  }
  std::vector<RowResult> results;
  ASSERT_TRUE(store->MultiGet("t", gets, &results).ok());
  size_t missing = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].size() != 2u || results[i].cell(0).value != acked[i]) ++missing;
  }
  EXPECT_EQ(missing, 0u) << "of " << acked.size() << " acknowledged rows";
}

TEST(StoreServerTest, SigtermStopsCleanlyWithClientsConnected) {
  ServerProcess server;
  ASSERT_TRUE(server.Start().ok());
  auto store = ClientFor(server);  // leaves an idle pooled connection open
  ExpectServes(server, "x");
  RawClient idle(server.port);
  server.child.Signal(SIGTERM);
  auto code = server.child.Wait(15s);
  ASSERT_TRUE(code.ok()) << "seg-store did not stop on SIGTERM";
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
  ASSERT_TRUE(child.ok());
  auto code = child->Wait(15s);
  ASSERT_TRUE(code.ok());
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
  ASSERT_TRUE(server.ok());
  auto observer = std::make_shared<CountingObserver>();
  (*server)->AddObserver(observer);
  ASSERT_TRUE((*server)->Start().ok());
  ThriftClientOptions co;
  co.port = (*server)->port();
  StoreOptions so;
  so.backend = StoreOptions::Backend::kThrift;
  so.thrift = co;
  auto client = std::move(*OpenStore(so));
  ASSERT_TRUE(client
                  ->Put("users", {{"u1", {Cell{"e", "ev1", 100, "x"}, Cell{"e", "ev2", 200, "y"}}},
                                  {"u2", {Cell{"s", "state", 50, "z"}}}})
                  .ok());
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
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? std::move(*server) : nullptr;
  };
  auto served = make_server("served");
  ASSERT_NE(served, nullptr);
  ASSERT_TRUE(served->Start().ok());

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
      EXPECT_TRUE(started.ok()) << started;
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
      EXPECT_TRUE(put.ok()) << put;
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
  ASSERT_TRUE(server.Start().ok());
  auto store = ClientFor(server);
  ExpectServes(server, "before");
  ASSERT_TRUE(store->Put("t", {{"k", {Cell{"a", "q", 1, "v"}}}}).ok());
  // Unreachable: Unavailable after the configured attempts, no exception.
  server.child.Signal(SIGKILL);
  ASSERT_TRUE(server.child.Wait(10s).ok());
  GetRequest g;
  g.row = "k";
  auto r = store->Get("t", g);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status();
}

}  // namespace
}  // namespace seg::store::testing
