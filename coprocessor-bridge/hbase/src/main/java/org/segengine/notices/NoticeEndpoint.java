package org.segengine.notices;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hbase.Cell;
import org.apache.hadoop.hbase.CellUtil;
import org.apache.hadoop.hbase.TableName;
import org.apache.hadoop.hbase.replication.BaseReplicationEndpoint;
import org.apache.hadoop.hbase.replication.ReplicationPeerConfig;
import org.apache.hadoop.hbase.wal.WAL;
import org.apache.hadoop.hbase.wal.WALEdit;
import org.apache.kafka.clients.producer.Callback;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import seg.Segmentation.ChangeNotice;

/**
 * HBase ReplicationEndpoint that turns durable WAL edits of `users:e` into
 * ChangeNotices on Kafka `user-changes` (key = row = user id; Kafka's default
 * partitioner is murmur2, the same as the C++ producers' murmur2_random).
 *
 * HBase ships WAL entries here after they are durable and calls replicate()
 * again with the same entries until it returns true, so every Put any writer
 * makes is announced at least once; the write path never waits for Kafka.
 * One notice per row per shipment (Notices.Builder), produced idempotently
 * with acks=all; replicate() returns true once Kafka acknowledged them all,
 * false (HBase sleeps and retries) while Kafka is unreachable.
 *
 * Configuration (peer config, else hbase-site.xml), our YAML's names under
 * "seg." (config/seg.example.yaml: store.notify.*, topics.changes):
 *   seg.store.notify.kafka.bootstrap_servers   required
 *   seg.store.notify.kafka.client_id           default seg-hbase-notices
 *   seg.store.notify.kafka.properties.NAME     any Kafka producer property (wins)
 *   seg.topics.changes                         default user-changes
 *   seg.store.notify.tables                    default users (namespace:name, comma-separated)
 *   seg.store.notify.families                  default e (comma-separated)
 *   seg.store.notify.ack_timeout_ms            default 30000: wait for acks per shipment
 *   seg.store.notify.dry_run                   default false; true: build the notices, send
 *                                              nothing (a benchmark's baseline: what HBase's
 *                                              replication source costs without Kafka)
 * The names before 2026-12 (seg.notify.*, seg.notify.topic, seg.notify.table)
 * are read when the new one is absent, with a warning, for one release.
 */
public class NoticeEndpoint extends BaseReplicationEndpoint {
  private static final Logger LOG = LoggerFactory.getLogger(NoticeEndpoint.class);
  public static final String PREFIX = "seg.store.notify.";
  public static final String PROPS_PREFIX = PREFIX + "kafka.properties.";
  public static final String TOPIC = "seg.topics.changes";
  public static final String TABLES = PREFIX + "tables";
  /** The old names, read when the new one is absent (warned; gone in the next release). */
  static final String OLD_PREFIX = "seg.notify.";
  static final String OLD_PROPS_PREFIX = OLD_PREFIX + "kafka.properties.";
  static final String OLD_TOPIC = OLD_PREFIX + "topic";
  static final String OLD_TABLE = OLD_PREFIX + "table";

  /** What the configuration says; replaced whole when the peer config changes. */
  private record Settings(String bootstrap, String topic, List<TableName> tables,
      List<byte[]> families, long ackTimeoutMs, boolean dryRun, Properties producerProps) {}

  private volatile Settings settings;
  private Producer<byte[], byte[]> producer; // null until first use / after a failure / a change

  private final AtomicLong delivered = new AtomicLong();
  private final AtomicLong shipments = new AtomicLong();
  private final AtomicLong failedShipments = new AtomicLong();
  private long lastReportNs = System.nanoTime(); // replicate() runs on one shipper thread

  @Override
  public UUID getPeerUUID() {
    // Not another HBase cluster: a stable id of our own, per peer.
    return UUID.nameUUIDFromBytes(("seg-notices:" + ctx.getPeerId()).getBytes(StandardCharsets.UTF_8));
  }

  @Override
  public boolean canReplicateToSameCluster() {
    return true;
  }

  @Override
  public void start() {
    startAsync();
  }

  @Override
  public void stop() {
    stopAsync();
  }

  @Override
  protected void doStart() {
    try {
      settings = settings(ctx.getConfiguration());
      LOG.info("seg notices: peer {} -> {}", ctx.getPeerId(), describe(settings));
      warnIfIdleBackoffIsLong(ctx.getLocalConfiguration());
      notifyStarted();
    } catch (RuntimeException e) {
      notifyFailed(e);
    }
  }

  /** Setup on an existing peer (update_peer_config): new settings, new producer. */
  @Override
  public void peerConfigUpdated(ReplicationPeerConfig rpc) {
    super.peerConfigUpdated(rpc);
    Configuration conf = new Configuration(ctx.getLocalConfiguration());
    rpc.getConfiguration().forEach(conf::set);
    try {
      Settings next = settings(conf);
      synchronized (this) {
        settings = next;
        closeProducer(5_000);
      }
      LOG.info("seg notices: peer {} updated -> {}", ctx.getPeerId(), describe(next));
    } catch (RuntimeException e) {
      LOG.error("seg notices: peer {} config update ignored: {}", ctx.getPeerId(), e.toString());
    }
  }

  /**
   * HBase 2.6's WAL reader, finding no new entries, waits sleepforretries x
   * a multiplier that grows by one per empty look up to
   * maxretriesmultiplier: after an idle spell that product is how long the
   * next write's notice can wait (HBase's defaults: 1 s x 300 = 5 min).
   */
  static long idleBackoffCapMs(Configuration conf) {
    return conf.getLong("replication.source.sleepforretries", 1000)
        * conf.getInt("replication.source.maxretriesmultiplier", 300);
  }

  private static void warnIfIdleBackoffIsLong(Configuration conf) {
    long capMs = idleBackoffCapMs(conf);
    if (capMs > 1000) {
      LOG.warn("seg notices: after an idle spell a notice can wait up to {} ms "
          + "(replication.source.sleepforretries x replication.source.maxretriesmultiplier); "
          + "set them to 100 and 5 on the region servers to bound it at 0.5 s "
          + "(coprocessor-bridge/hbase/README.md)", capMs);
    }
  }

  /** `name`'s value, else `oldName`'s (with a warning), else `dflt`. */
  static String get(Configuration conf, String name, String oldName, String dflt) {
    String v = conf.get(name);
    if (v != null) return v;
    v = conf.get(oldName);
    if (v == null) return dflt;
    LOG.warn("seg notices: {} is renamed {}; the old name goes in the next release", oldName, name);
    return v;
  }

  /** A comma-separated list under `name` (else `oldName`), trimmed, empty items dropped. */
  static List<String> list(Configuration conf, String name, String oldName, String dflt) {
    List<String> out = new ArrayList<>();
    for (String item : get(conf, name, oldName, dflt).split(",")) {
      if (!item.trim().isEmpty()) out.add(item.trim());
    }
    return out;
  }

  static Settings settings(Configuration conf) {
    String bootstrap = get(conf, PREFIX + "kafka.bootstrap_servers",
        OLD_PREFIX + "kafka.bootstrap_servers", "").trim();
    if (bootstrap.isEmpty()) {
      throw new IllegalArgumentException(PREFIX + "kafka.bootstrap_servers is not set");
    }
    List<byte[]> families = new ArrayList<>();
    for (String f : list(conf, PREFIX + "families", OLD_PREFIX + "families", "e")) {
      families.add(f.getBytes(StandardCharsets.UTF_8));
    }
    List<TableName> tables = new ArrayList<>();
    for (String t : list(conf, TABLES, OLD_TABLE, "users")) tables.add(TableName.valueOf(t));
    return new Settings(bootstrap, get(conf, TOPIC, OLD_TOPIC, "user-changes"), tables, families,
        Long.parseLong(get(conf, PREFIX + "ack_timeout_ms", OLD_PREFIX + "ack_timeout_ms", "30000")),
        Boolean.parseBoolean(get(conf, PREFIX + "dry_run", OLD_PREFIX + "dry_run", "false")),
        producerProperties(conf, bootstrap));
  }

  private static String describe(Settings s) {
    StringBuilder fams = new StringBuilder();
    for (byte[] f : s.families()) {
      fams.append(fams.length() == 0 ? "" : ",").append(new String(f, StandardCharsets.UTF_8));
    }
    return s.bootstrap() + " topic " + s.topic() + " for " + s.tables() + ":" + fams
        + (s.dryRun() ? " (dry run: nothing is sent)" : "");
  }

  @Override
  protected void doStop() {
    closeProducer(5_000);
    LOG.info("seg notices: peer {} stopped ({} notices delivered in {} shipments, {} shipments "
        + "retried)", ctx.getPeerId(), delivered.get(), shipments.get(), failedShipments.get());
    notifyStopped();
  }

  static Properties producerProperties(Configuration conf, String bootstrap) {
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(ProducerConfig.CLIENT_ID_CONFIG,
        get(conf, PREFIX + "kafka.client_id", OLD_PREFIX + "kafka.client_id", "seg-hbase-notices"));
    p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    // A dead cluster must not hold a shipment for minutes: fail fast and let
    // HBase retry the shipment.
    p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "10000");
    p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
    p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "20000");
    // replicate() flushes after queueing a shipment, so the linger only
    // lets a shipment's notices share requests: with 0 every notice was a
    // request of its own (0.14 CPU-ms per notice in the region server).
    p.put(ProducerConfig.LINGER_MS_CONFIG, "100");
    // No client telemetry push (KIP-714): its sender work showed up in the
    // region server's profile and nothing here reads it.
    p.put("enable.metrics.push", "false");
    // Old names first, so that a property under the new name wins.
    Map<String, String> old = conf.getPropsWithPrefix(OLD_PROPS_PREFIX);
    if (!old.isEmpty()) {
      LOG.warn("seg notices: {}* is renamed {}*; the old name goes in the next release",
          OLD_PROPS_PREFIX, PROPS_PREFIX);
    }
    for (Map.Entry<String, String> e : old.entrySet()) p.put(e.getKey(), e.getValue());
    for (Map.Entry<String, String> e : conf.getPropsWithPrefix(PROPS_PREFIX).entrySet()) {
      p.put(e.getKey(), e.getValue());
    }
    // Classes, not names: the names would be looked up through the thread's
    // context class loader, which does not see our relocated copy.
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class);
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class);
    return p;
  }

  /** Whether the cell is a Put to one of the notifying families. */
  private static boolean wanted(Cell cell, List<byte[]> families) {
    if (cell.getType() != Cell.Type.Put || WALEdit.isMetaEditFamily(cell)) return false;
    for (byte[] f : families) {
      if (CellUtil.matchingFamily(cell, f)) return true;
    }
    return false;
  }

  @Override
  public boolean replicate(ReplicateContext context) {
    Settings s = settings;
    Notices.Builder rows = new Notices.Builder();
    for (WAL.Entry entry : context.getEntries()) {
      if (!s.tables().contains(entry.getKey().getTableName())) continue;
      long writeTime = entry.getKey().getWriteTime();
      for (Cell cell : entry.getEdit().getCells()) {
        if (wanted(cell, s.families())) {
          rows.add(cell.getRowArray(), cell.getRowOffset(), cell.getRowLength(), cell.getTimestamp(),
              writeTime);
        }
      }
    }
    if (rows.isEmpty()) return true;
    List<Map.Entry<byte[], ChangeNotice>> notices = rows.build();
    if (s.dryRun()) return true;
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(s.ackTimeoutMs());
    try {
      Producer<byte[], byte[]> p = producer(s);
      Acks acks = new Acks(notices.size());
      for (Map.Entry<byte[], ChangeNotice> n : notices) {
        p.send(new ProducerRecord<>(s.topic(), n.getKey(), n.getValue().toByteArray()), acks);
      }
      p.flush(); // send now, in as few requests as the shipment fits
      acks.await(deadline);
      delivered.addAndGet(notices.size());
      shipments.incrementAndGet();
      report();
      return true;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    } catch (Exception e) {
      // Kafka down or slow: HBase re-ships the same entries after a pause.
      // A fresh producer next time (an idempotent one whose batches expired
      // may be wedged); duplicates are harmless, missing notices are not.
      if (failedShipments.getAndIncrement() % 100 == 0) {
        LOG.warn("seg notices: {} notices not acknowledged, shipment will be retried: {}",
            notices.size(), e.toString());
      }
      closeProducer(0);
      return false;
    }
  }

  /** Counts a shipment's acknowledgements: one callback, not a future per notice. */
  static final class Acks implements Callback {
    private final CountDownLatch pending;
    private final AtomicReference<Exception> failure = new AtomicReference<>();

    Acks(int n) {
      pending = new CountDownLatch(n);
    }

    @Override
    public void onCompletion(RecordMetadata metadata, Exception e) {
      if (e != null) failure.compareAndSet(null, e);
      pending.countDown();
    }

    /** Returns once all are acknowledged; throws on the first failure or at `deadlineNs`. */
    void await(long deadlineNs) throws Exception {
      if (!pending.await(Math.max(0, deadlineNs - System.nanoTime()), TimeUnit.NANOSECONDS)) {
        throw new TimeoutException(pending.getCount() + " notices not acknowledged in time");
      }
      Exception e = failure.get();
      if (e != null) throw e;
    }
  }

  /** Once a minute: how many notices a shipment carries (each costs one flush and its acks). */
  private void report() {
    long now = System.nanoTime();
    if (now - lastReportNs < TimeUnit.MINUTES.toNanos(1)) return;
    lastReportNs = now;
    long n = shipments.get();
    LOG.info("seg notices: peer {}: {} notices in {} shipments ({} per shipment), {} retried",
        ctx.getPeerId(), delivered.get(), n, n == 0 ? 0 : delivered.get() / n,
        failedShipments.get());
  }

  private synchronized Producer<byte[], byte[]> producer(Settings s) {
    if (producer == null) producer = new KafkaProducer<>(s.producerProps());
    return producer;
  }

  private synchronized void closeProducer(long timeoutMs) {
    if (producer == null) return;
    try {
      producer.close(java.time.Duration.ofMillis(timeoutMs));
    } catch (RuntimeException e) {
      LOG.warn("seg notices: closing producer: {}", e.toString());
    }
    producer = null;
  }
}
