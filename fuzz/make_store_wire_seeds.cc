// Writes the seeds of store_wire_fuzz: client sessions as
// THBaseServiceClient sends them (every call of the service, calls over
// the limits the fuzzer runs with), in each protocol and transport.
// Usage: make_store_wire_seeds OUT_DIR (tools: see fuzz/make_seeds.py).
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/transport/TBufferTransports.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include "proto/THBaseService.h"

namespace {

namespace at = apache::thrift;
using namespace seg::store::hbase;

TColumnValue Cell(const std::string& family, const std::string& qualifier,
                  const std::string& value) {
  TColumnValue c;
  c.__set_family(family);
  c.__set_qualifier(qualifier);
  c.__set_value(value);
  c.__set_timestamp(1'750'000'000'000);
  return c;
}

TPut Put(const std::string& row, const std::string& value) {
  TPut p;
  p.__set_row(row);
  p.__set_columnValues({Cell("e", "q1", value), Cell("s", "m", "x")});
  return p;
}

TGet Get(const std::string& row) {
  TGet g;
  g.__set_row(row);
  TColumn c;
  c.__set_family("e");
  g.__set_columns({c});
  g.__set_maxVersions(2);
  return g;
}

using Session = std::function<void(THBaseServiceClient&)>;

void Write(const std::string& dir, const std::string& name, uint8_t mode, const Session& session) {
  auto mem = std::make_shared<at::transport::TMemoryBuffer>();
  std::shared_ptr<at::transport::TTransport> transport = mem;
  if (mode & 2) transport = std::make_shared<at::transport::TFramedTransport>(mem);
  std::shared_ptr<at::protocol::TProtocol> proto;
  if (mode & 1) {
    proto = std::make_shared<at::protocol::TBinaryProtocol>(transport);
  } else {
    proto = std::make_shared<at::protocol::TCompactProtocol>(transport);
  }
  THBaseServiceClient client(proto);
  session(client);
  transport->flush();
  std::ofstream out(dir + "/" + name + "-" + std::to_string(mode), std::ios::binary);
  out.put(static_cast<char>(mode | (4 << 2)));  // reads of 16 bytes
  out << mem->getBufferAsString();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
  for (uint8_t mode = 0; mode < 4; ++mode) {
    Write(dir, "seed-calls", mode, [](THBaseServiceClient& c) {
      c.send_put("users", Put("u1", "v"));
      c.send_putMultiple("users", {Put("u2", "a"), Put("u3", "b")});
      c.send_get("users", Get("u1"));
      c.send_exists("users", Get("u1"));
      c.send_getMultiple("users", {Get("u1"), Get("u2")});
      TScan scan;
      scan.__set_startRow("u");
      scan.__set_stopRow("v");
      c.send_openScanner("users", scan);
      c.send_getScannerRows(1, 2);
      c.send_closeScanner(1);
      c.send_getScannerResults("users", scan, 3);
      TDelete d;
      d.__set_row("u3");
      c.send_deleteSingle("users", d);
      c.send_deleteMultiple("users", {d});
      TRowMutations m;
      m.__set_row("u1");
      TMutation put;
      put.__set_put(Put("u1", "w"));
      m.__set_mutations({put});
      c.send_mutateRow("users", m);
      c.send_checkAndMutate("users", "u1", "e", "q1", TCompareOperator::EQUAL, "w", m);
    });
    Write(dir, "seed-limits", mode, [](THBaseServiceClient& c) {
      c.send_put("users", Put("big", std::string(100, 'x')));  // > max_string_bytes (64)
      std::vector<TGet> gets;
      for (int i = 0; i < 9; ++i) gets.push_back(Get("r" + std::to_string(i)));
      c.send_getMultiple("users", gets);  // > max_rows_per_request (8)
      c.send_getScannerRows(7, 1000);
      c.send_put("nosuchtable", Put("u1", "v"));
      c.send_get("users", Get("u1"));
    });
    Write(dir, "seed-long-list", mode, [](THBaseServiceClient& c) {
      std::vector<TDelete> deletes(300);  // walked before it is decoded
      for (auto& d : deletes) d.__set_row("r");
      c.send_deleteMultiple("users", deletes);
    });
  }
  return 0;
}
