package org.segengine.notices;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hbase.HBaseConfiguration;
import org.apache.hadoop.hbase.HConstants;
import org.apache.hadoop.hbase.ServerName;
import org.apache.hadoop.hbase.TableName;
import org.apache.hadoop.hbase.client.Admin;
import org.apache.hadoop.hbase.client.ColumnFamilyDescriptor;
import org.apache.hadoop.hbase.client.ColumnFamilyDescriptorBuilder;
import org.apache.hadoop.hbase.client.Connection;
import org.apache.hadoop.hbase.client.ConnectionFactory;
import org.apache.hadoop.hbase.client.TableDescriptor;
import org.apache.hadoop.hbase.replication.ReplicationPeerConfig;
import org.apache.hadoop.hbase.replication.ReplicationPeerConfigBuilder;
import org.apache.hadoop.hbase.replication.ReplicationPeerDescription;
import org.apache.hadoop.hbase.util.Bytes;

/**
 * Adds (or updates) the replication peer that feeds NoticeEndpoint and sets
 * REPLICATION_SCOPE 1 on the notifying families. Idempotent. Reads the
 * cluster from hbase-site.xml on the classpath.
 *
 *   java -cp CONF:HBASE_CLASSPATH:seg-hbase-notices.jar org.segengine.notices.Setup \
 *     --bootstrap HOST:PORT[,...] [--topic user-changes] [--table users] [--families e]
 *     [--peer seg_notices] [--set seg.store.notify.kafka.properties.NAME=VALUE]... [--roll-wal]
 *   ... Setup --remove [--peer seg_notices]
 *
 * A new peer starts at the beginning of each region server's current WAL, so
 * it first re-announces the writes already in that file (harmless
 * duplicates). --roll-wal rolls every region server's WAL before adding the
 * peer, so that it starts with the next write: what a benchmark that removes
 * and adds the peer between runs needs.
 */
public final class Setup {
  public static void main(String[] args) throws Exception {
    String peer = "seg_notices", bootstrap = null, topic = "user-changes", table = "users";
    String families = "e";
    boolean remove = false, rollWal = false;
    Map<String, String> extra = new HashMap<>();
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      switch (a) {
        case "--peer" -> peer = args[++i];
        case "--bootstrap" -> bootstrap = args[++i];
        case "--topic" -> topic = args[++i];
        case "--table" -> table = args[++i];
        case "--families" -> families = args[++i];
        case "--remove" -> remove = true;
        case "--roll-wal" -> rollWal = true;
        case "--set" -> {
          String kv = args[++i];
          int eq = kv.indexOf('=');
          if (eq <= 0) throw new IllegalArgumentException("--set wants KEY=VALUE: " + kv);
          extra.put(kv.substring(0, eq), kv.substring(eq + 1));
        }
        default -> throw new IllegalArgumentException("unknown argument " + a);
      }
    }
    Configuration conf = HBaseConfiguration.create();
    try (Connection conn = ConnectionFactory.createConnection(conf); Admin admin = conn.getAdmin()) {
      boolean exists = false;
      for (ReplicationPeerDescription d : admin.listReplicationPeers()) {
        if (d.getPeerId().equals(peer)) exists = true;
      }
      if (remove) {
        if (exists) admin.removeReplicationPeer(peer);
        System.out.println("seg notices: peer " + peer + (exists ? " removed" : " absent"));
        return;
      }
      if (bootstrap == null) throw new IllegalArgumentException("--bootstrap is required");
      TableName tn = TableName.valueOf(table);
      List<String> fams = new ArrayList<>();
      TableDescriptor td = admin.getDescriptor(tn);
      for (String f : families.split(",")) {
        f = f.trim();
        if (f.isEmpty()) continue;
        fams.add(f);
        ColumnFamilyDescriptor cf = td.getColumnFamily(Bytes.toBytes(f));
        if (cf == null) throw new IllegalArgumentException(table + " has no family " + f);
        if (cf.getScope() != HConstants.REPLICATION_SCOPE_GLOBAL) {
          admin.modifyColumnFamily(tn, ColumnFamilyDescriptorBuilder.newBuilder(cf)
              .setScope(HConstants.REPLICATION_SCOPE_GLOBAL).build());
          System.out.println("seg notices: " + table + ":" + f + " REPLICATION_SCOPE => 1");
        }
      }
      Map<TableName, List<String>> tableCfs = new HashMap<>();
      tableCfs.put(tn, fams);
      ReplicationPeerConfigBuilder b = ReplicationPeerConfig.newBuilder()
          .setReplicationEndpointImpl(NoticeEndpoint.class.getName())
          .setReplicateAllUserTables(false)
          .setTableCFsMap(tableCfs)
          .putConfiguration(NoticeEndpoint.PREFIX + "kafka.bootstrap_servers", bootstrap)
          .putConfiguration(NoticeEndpoint.TOPIC, topic)
          .putConfiguration(NoticeEndpoint.TABLES, table)
          .putConfiguration(NoticeEndpoint.PREFIX + "families", String.join(",", fams));
      for (Map.Entry<String, String> e : extra.entrySet()) b.putConfiguration(e.getKey(), e.getValue());
      if (exists) {
        admin.updateReplicationPeerConfig(peer, b.build());
      } else {
        if (rollWal) {
          for (ServerName rs : admin.getRegionServers()) admin.rollWALWriter(rs);
        }
        admin.addReplicationPeer(peer, b.build(), true);
      }
      System.out.println("seg notices: peer " + peer + (exists ? " updated" : " added") + " -> "
          + bootstrap + " topic " + topic + " for " + table + ":" + String.join(",", fams));
    }
  }
}
