#include "store/admin/hbase_admin.h"

#include <thrift/TApplicationException.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>
#include <thrift/transport/TTransportException.h>

#include <functional>

#include "proto/THBaseAdmin.h"

namespace seg::store {
namespace {

namespace at = apache::thrift;
namespace ha = seg::store::hbase_admin;

// One connection per admin call sequence: admin calls are rare.
Status WithClient(const AdminOptions& o, const char* what,
                  const std::function<void(ha::THBaseAdminClient&)>& fn) {
  auto socket = std::make_shared<at::transport::TSocket>(o.host, o.port);
  socket->setConnTimeout(o.timeout_ms);
  socket->setRecvTimeout(o.timeout_ms);
  socket->setSendTimeout(o.timeout_ms);
  auto transport = std::make_shared<at::transport::TBufferedTransport>(socket);
  auto protocol = std::make_shared<at::protocol::TBinaryProtocol>(transport);
  ha::THBaseAdminClient client(protocol);
  std::string where = std::string(what) + " on " + o.host + ":" + std::to_string(o.port);
  try {
    transport->open();
    fn(client);
    transport->close();
    return Status::OK();
  } catch (const ha::TIOError& e) {
    return InternalError(where + ": TIOError: " + e.message);
  } catch (const at::TApplicationException& e) {
    if (e.getType() == at::TApplicationException::UNKNOWN_METHOD)
      return UnimplementedError(where + ": the server has no admin calls (seg-store?)");
    return InternalError(where + ": " + e.what());
  } catch (const at::transport::TTransportException& e) {
    return UnavailableError(where + ": " + e.what());
  } catch (const at::TException& e) {
    return InternalError(where + ": " + e.what());
  }
}

ha::TTableName Name(const std::string& table) {
  ha::TTableName n;
  n.__set_qualifier(table);
  return n;
}

}  // namespace

StatusOr<std::vector<std::string>> ListTables(const AdminOptions& options,
                                              const std::string& regex) {
  std::vector<ha::TTableName> names;
  SEG_RETURN_IF_ERROR(WithClient(options, "getTableNamesByPattern",
                                 [&](auto& c) { c.getTableNamesByPattern(names, regex, false); }));
  std::vector<std::string> out;
  for (const auto& n : names) {
    bool default_ns = !n.__isset.ns || n.ns.empty() || n.ns == "default";
    out.push_back(default_ns ? n.qualifier : n.ns + ":" + n.qualifier);
  }
  return out;
}

StatusOr<std::vector<std::string>> CreateTables(const AdminOptions& options,
                                                const std::vector<TableOptions>& tables) {
  std::vector<std::string> created;
  for (const auto& t : tables) {
    bool exists = false;
    SEG_RETURN_IF_ERROR(
        WithClient(options, "tableExists", [&](auto& c) { exists = c.tableExists(Name(t.name)); }));
    if (exists) continue;
    ha::TTableDescriptor desc;
    desc.__set_tableName(Name(t.name));
    std::vector<ha::TColumnFamilyDescriptor> families;
    for (const auto& f : t.families) {
      ha::TColumnFamilyDescriptor fd;
      fd.__set_name(f.name);
      fd.__set_maxVersions(f.max_versions);
      if (f.ttl_ms > 0) {
        int64_t s = (f.ttl_ms + 999) / 1000;
        if (s > INT32_MAX) return InvalidArgumentError("TTL too long for HBase: " + t.name);
        fd.__set_timeToLive(static_cast<int32_t>(s));
      }
      families.push_back(std::move(fd));
    }
    desc.__set_columns(std::move(families));
    Status st = WithClient(options, "createTable", [&](auto& c) { c.createTable(desc, {}); });
    // Another client created it meanwhile: as good as created by us.
    if (!st.ok() && st.message().find("TableExistsException") != std::string_view::npos) continue;
    SEG_RETURN_IF_ERROR(st);
    created.push_back(t.name);
  }
  return created;
}

Status DropTables(const AdminOptions& options, const std::vector<std::string>& names) {
  for (const auto& name : names) {
    bool exists = false;
    SEG_RETURN_IF_ERROR(
        WithClient(options, "tableExists", [&](auto& c) { exists = c.tableExists(Name(name)); }));
    if (!exists) continue;
    SEG_RETURN_IF_ERROR(
        WithClient(options, "disableTable", [&](auto& c) { c.disableTable(Name(name)); }));
    SEG_RETURN_IF_ERROR(
        WithClient(options, "deleteTable", [&](auto& c) { c.deleteTable(Name(name)); }));
  }
  return Status::OK();
}

}  // namespace seg::store
