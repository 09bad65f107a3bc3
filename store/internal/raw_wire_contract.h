// Wire-level cases run against both seg-store and a real HBase with the
// generated THBaseService client (not our Store client), so seg-store
// answers what HBase's gateway answers to other clients too.
#pragma once

#include <gtest/gtest.h>

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

#include <memory>
#include <string>

#include "proto/THBaseService.h"

namespace seg::store::testing {

// TDelete's deleteType applies to each column; under DELETE_COLUMNS a
// column without qualifier is the column with the empty qualifier (HBase's
// Delete.addColumns(family, null)), not the whole family.
inline void ExpectDeleteTypeAppliesToFamilyOnlyColumns(const std::string& host, int port,
                                                       const std::string& row) {
  namespace at = apache::thrift;
  namespace hb = seg::store::hbase;
  auto socket = std::make_shared<at::transport::TSocket>(host, port);
  socket->setRecvTimeout(30000);
  auto transport = std::make_shared<at::transport::TBufferedTransport>(socket);
  hb::THBaseServiceClient client(std::make_shared<at::protocol::TBinaryProtocol>(transport));
  transport->open();
  hb::TPut put;
  put.row = row;
  for (const char* q : {"", "q"}) {
    hb::TColumnValue cv;
    cv.family = "a";
    cv.qualifier = q;
    cv.value = "v";
    cv.__set_timestamp(5);
    put.columnValues.push_back(cv);
  }
  client.put("t", put);
  hb::TColumn fam;
  fam.family = "a";
  hb::TDelete del;
  del.row = row;
  del.__set_columns({fam});
  del.__set_deleteType(hb::TDeleteType::DELETE_COLUMNS);
  client.deleteSingle("t", del);
  hb::TGet get;
  get.row = row;
  hb::TResult result;
  client.get(result, "t", get);
  ASSERT_EQ(result.columnValues.size(), 1u);
  EXPECT_EQ(result.columnValues[0].qualifier, "q");
  del.__set_deleteType(hb::TDeleteType::DELETE_FAMILY);
  client.deleteSingle("t", del);
  client.get(result, "t", get);
  EXPECT_TRUE(result.columnValues.empty());
  transport->close();
}

}  // namespace seg::store::testing
