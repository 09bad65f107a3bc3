// A StoreServer (the code seg-store runs) on a free loopback port and a
// Thrift2 client to it: the store the segmenter tests read and write.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "store/server/store_server.h"
#include "store/store.h"

namespace seg::testing {

struct ServedStore {
  std::unique_ptr<store::StoreServer> server;
  std::unique_ptr<store::Store> client;
};

inline StatusOr<ServedStore> ServeStore(const std::string& data_dir) {
  ServedStore served;
  store::StoreServerOptions server_options;
  server_options.port = 0;
  server_options.store.data_dir = data_dir;
  SEG_ASSIGN_OR_RETURN(served.server, store::StoreServer::Create(server_options));
  SEG_RETURN_IF_ERROR(served.server->Start());
  store::StoreOptions client;
  client.backend = store::StoreOptions::Backend::kThrift;
  client.thrift.port = served.server->port();
  SEG_ASSIGN_OR_RETURN(served.client, store::OpenStore(client));
  return served;
}

}  // namespace seg::testing
