#!/usr/bin/env bash
# Real services for the `real` test tier and for trying the product on them:
#
#   tools/dev services up [kafka|kafka3|hbase]...   start (all three when none named)
#   tools/dev services down [kafka|kafka3|hbase]... stop, delete their data (logs stay)
#   tools/dev services status                       what runs, where
#   tools/dev services node-stop|node-start kafka3 N  stop/restart broker N (1-3), data kept
#
#   kafka   one KRaft node (broker+controller), Kafka 3.9.1 (tools/services/kafka/pom.xml)
#   kafka3  three KRaft nodes, each broker+controller, one cluster id
#   hbase   standalone HBase 2.6.1 (master+regionserver+ZooKeeper in one JVM)
#           and its Thrift2 gateway (binary, unframed); tables created with
#           seg-store-admin when it is built (users, due, segmeta)
#   hbase with SEG_HBASE_NOTICES=1: also the change-notice ReplicationEndpoint
#           (coprocessor-bridge/hbase, built here with Maven) on HBase's
#           classpath and its replication peer `seg_notices` (users:e,
#           REPLICATION_SCOPE 1) producing to Kafka topic user-changes at
#           $SEG_HBASE_NOTICES_BOOTSTRAP, else at this run dir's `kafka`
#           (so: SEG_HBASE_NOTICES=1 tools/dev services up kafka hbase).
#           SEG_HBASE_NOTICES_TOPIC overrides the topic.
#   hbase with SEG_HBASE_THRIFT_IDLE_MS=N: the gateway closes clients idle
#           N ms (default 60000, HBase's own); with SEG_HBASE_THRIFT_SCANNER_MS=N
#           it forgets scanners idle N ms (its hbase.client.scanner.timeout.period,
#           set on the gateway only; default 60000).
#
# Everything binds 127.0.0.1 on ports this script picks free. Run directory:
# $SEG_SERVICES_DIR (default build/services): <svc>/ holds data, logs, pids;
# services.env (sourceable) gets KAFKA_BOOTSTRAP, KAFKA3_BOOTSTRAP,
# HBASE_THRIFT_HOST, HBASE_THRIFT_PORT. Jars come from ~/.m2 through the
# pinned poms (offline after the first download). Heaps: Kafka -Xmx512m per
# node, HBase -Xmx1g, Thrift2 gateway -Xmx512m.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SVC_SRC="$ROOT/tools/services"
RUN="${SEG_SERVICES_DIR:-$ROOT/build/services}"
BUILD_DIR="${SEG_BUILD_DIR:-$ROOT/build/default}"
ENV_FILE="$RUN/services.env"
KAFKA_READY_S="${SEG_KAFKA_READY_S:-120}"
HBASE_READY_S="${SEG_HBASE_READY_S:-240}"
STOP_S=30

log() { echo "services: $*" >&2; }
die() { log "$*"; exit 1; }

now() { date +%s; }

# N distinct free loopback ports (bound together, so no duplicates).
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The classpath for a pom: offline first, online once when ~/.m2 lacks it.
classpath() {
  local name="$1" out="$RUN/$1.classpath"
  mkdir -p "$RUN"
  # Reuse the last answer while the pom is unchanged and every jar is there.
  if [[ -s "$out" && "$out" -nt "$SVC_SRC/$name/pom.xml" ]]; then
    local jar ok=1 jars
    IFS=: read -r -a jars <"$out"
    for jar in "${jars[@]}"; do [[ -f "$jar" ]] || { ok=0; break; }; done
    ((ok)) && { echo "$out"; return; }
  fi
  local args=(-B -q -f "$SVC_SRC/$name/pom.xml" dependency:build-classpath "-Dmdep.outputFile=$out")
  if ! mvn -o "${args[@]}" >"$RUN/$name.mvn.log" 2>&1; then
    log "$name: downloading jars through Maven (first time only)"
    local t0; t0=$(now)
    mvn "${args[@]}" >"$RUN/$name.mvn.log" 2>&1 || { cat "$RUN/$name.mvn.log" >&2; die "$name: mvn failed"; }
    log "$name: jars resolved in $(($(now) - t0)) s"
  fi
  echo "$out"
}

# start NAME LOGFILE CMD...: background child in its own session; pid in NAME.pid
start_proc() {
  local pidfile="$1" logfile="$2"
  shift 2
  setsid "$@" >"$logfile" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

# TERM to every pid at once (a KRaft quorum stopped one node at a time
# loses its controller and the last nodes hang in shutdown), then wait;
# KILL what is left after STOP_S.
stop_pidfiles() {
  local f pids=()
  for f in "$@"; do
    [[ -f "$f" ]] || continue
    local pid; pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; pids+=("$pid"); fi
  done
  local deadline=$(($(now) + STOP_S)) pid
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && (($(now) < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid did not stop in ${STOP_S}s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
  done
  rm -f "$@"
}
stop_pidfile() { stop_pidfiles "$1"; }

running() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_env() {
  mkdir -p "$RUN"
  {
    echo "# written by tools/dev services; source it"
    [[ -f "$RUN/kafka/bootstrap" ]] && echo "KAFKA_BOOTSTRAP=$(cat "$RUN/kafka/bootstrap")"
    [[ -f "$RUN/kafka3/bootstrap" ]] && echo "KAFKA3_BOOTSTRAP=$(cat "$RUN/kafka3/bootstrap")"
    if [[ -f "$RUN/hbase/thrift_port" ]]; then
      echo "HBASE_THRIFT_HOST=127.0.0.1"
      echo "HBASE_THRIFT_PORT=$(cat "$RUN/hbase/thrift_port")"
      [[ -f "$RUN/hbase/thrift_scanner_ms" ]] &&
        echo "HBASE_THRIFT_SCANNER_MS=$(cat "$RUN/hbase/thrift_scanner_ms")"
    fi
  } >"$ENV_FILE.tmp"
  sed -i 's/^/export /; s/^export #/#/' "$ENV_FILE.tmp"
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

# ---------------------------------------------------------------- Kafka (KRaft)

kafka_up() {
  local svc="$1" nodes="$2"
  local dir="$RUN/$svc"
  if running "$dir/node1.pid"; then log "$svc already up: $(cat "$dir/bootstrap")"; return; fi
  command -v kcat >/dev/null || die "kcat missing (tools/dev setup installs it)"
  local cp; cp=$(cat "$(classpath kafka)")
  rm -rf "$dir"
  mkdir -p "$dir"
  local ports; read -r -a ports <<<"$(free_ports $((2 * nodes)))"
  local voters="" bootstrap="" i
  for ((i = 1; i <= nodes; i++)); do
    voters+="${voters:+,}$i@127.0.0.1:${ports[$((2 * i - 1))]}"
    bootstrap+="${bootstrap:+,}127.0.0.1:${ports[$((2 * i - 2))]}"
  done
  local rf=1 isr=1
  ((nodes >= 3)) && rf=3 isr=2
  cat >"$dir/log4j.properties" <<EOF
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
EOF
  local java=(java -Xmx512m -Xms256m -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j.configuration=file:$dir/log4j.properties" -cp "$cp")
  local cluster_id
  cluster_id=$("${java[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
  [[ -n "$cluster_id" ]] || die "$svc: StorageTool random-uuid gave nothing"
  for ((i = 1; i <= nodes; i++)); do
    local p=${ports[$((2 * i - 2))]} c=${ports[$((2 * i - 1))]}
    cat >"$dir/node$i.properties" <<EOF
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$p,CONTROLLER://127.0.0.1:$c
advertised.listeners=PLAINTEXT://127.0.0.1:$p
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data$i
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.segment.bytes=16777216
EOF
    "${java[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/node$i.properties" \
      >"$dir/format$i.log" 2>&1 || { cat "$dir/format$i.log" >&2; die "$svc: format failed"; }
  done
  local t0; t0=$(now)
  for ((i = 1; i <= nodes; i++)); do
    start_proc "$dir/node$i.pid" "$dir/node$i.log" "${java[@]}" kafka.Kafka "$dir/node$i.properties"
  done
  echo "$bootstrap" >"$dir/bootstrap"
  # Ready: a metadata request lists every broker.
  local deadline=$(($(now) + KAFKA_READY_S))
  while true; do
    local brokers
    brokers=$(kcat -b "$bootstrap" -L -m 3 2>/dev/null | sed -n 's/^ *\([0-9]*\) brokers:.*/\1/p' || true)
    [[ "$brokers" == "$nodes" ]] && break
    for ((i = 1; i <= nodes; i++)); do
      running "$dir/node$i.pid" || { tail -30 "$dir/node$i.log" >&2; die "$svc node $i exited"; }
    done
    (($(now) < deadline)) || { tail -30 "$dir/node1.log" >&2; die "$svc not ready in ${KAFKA_READY_S}s"; }
    sleep 0.5
  done
  log "$svc ready in $(($(now) - t0)) s: $bootstrap"
  write_env
}

# Stops or restarts one node of a running cluster (its data stays).
kafka_node() {
  local action="$1" svc="$2" n="$3" dir="$RUN/$2"
  [[ -f "$dir/node$n.properties" ]] || die "$svc has no node $n"
  if [[ "$action" == stop ]]; then
    stop_pidfile "$dir/node$n.pid"
    log "$svc node $n stopped"
    return
  fi
  running "$dir/node$n.pid" && { log "$svc node $n already running"; return; }
  local cp; cp=$(cat "$(classpath kafka)")
  local port; port=$(sed -n 's|^listeners=PLAINTEXT://127.0.0.1:\([0-9]*\),.*|\1|p' "$dir/node$n.properties")
  start_proc "$dir/node$n.pid" "$dir/node$n.log.restart" java -Xmx512m -Xms256m -XX:+UseG1GC \
    -Djava.awt.headless=true "-Dlog4j.configuration=file:$dir/log4j.properties" -cp "$cp" \
    kafka.Kafka "$dir/node$n.properties"
  local deadline=$(($(now) + KAFKA_READY_S))
  until kcat -b "127.0.0.1:$port" -L -m 2 2>/dev/null | grep -q "broker $n at .*:$port"; do
    running "$dir/node$n.pid" || { tail -30 "$dir/node$n.log.restart" >&2; die "$svc node $n exited"; }
    (($(now) < deadline)) || die "$svc node $n not back in ${KAFKA_READY_S}s"
    sleep 0.5
  done
  log "$svc node $n running again at 127.0.0.1:$port"
}

kafka_down() {
  local svc="$1" dir="$RUN/$1" f
  [[ -d "$dir" ]] || return 0
  stop_pidfiles "$dir"/node*.pid
  rm -rf "$dir"/data* "$dir/bootstrap"
  write_env
}

# ---------------------------------------------------------------- HBase

# bin/hbase's flags for JDK 17 (hbase.surefire/jdk17 flags).
HBASE_JDK17=(
  -XX:+IgnoreUnrecognizedVMOptions
  -Dorg.apache.hbase.thirdparty.io.netty.tryReflectionSetAccessible=true
  --add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.lang.reflect=ALL-UNNAMED
  --add-opens=java.base/java.io=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED
  --add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.util.concurrent=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED
  --add-opens=java.base/java.lang.invoke=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens=java.base/jdk.internal.misc=ALL-UNNAMED --add-opens=java.base/java.net=ALL-UNNAMED
  --add-opens=java.base/sun.security.x509=ALL-UNNAMED --add-opens=java.base/sun.security.util=ALL-UNNAMED
  --add-exports=java.base/jdk.internal.misc=ALL-UNNAMED --add-exports=java.base/sun.net.dns=ALL-UNNAMED
  --add-exports=java.base/sun.net.util=ALL-UNNAMED
  --add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED
)

# Builds coprocessor-bridge/hbase (offline first) into $RUN/hbase-notices;
# prints the jar.
notices_jar() {
  local out="$RUN/hbase-notices" pom="$ROOT/coprocessor-bridge/hbase/pom.xml"
  local jar="$out/seg-hbase-notices.jar"
  mkdir -p "$out"
  local newest
  newest=$(find "$ROOT/coprocessor-bridge/hbase" "$ROOT/proto/segmentation.proto" -newer "$jar" -type f 2>/dev/null | head -1 || true)
  if [[ -f "$jar" && -z "$newest" ]]; then echo "$jar"; return; fi
  local args=(-B -q -f "$pom" package "-Dnotices.build.dir=$out")
  local t0; t0=$(now)
  if ! mvn -o "${args[@]}" >"$RUN/hbase-notices.mvn.log" 2>&1; then
    log "hbase-notices: downloading build plugins through Maven (first time only)"
    mvn "${args[@]}" >"$RUN/hbase-notices.mvn.log" 2>&1 || { cat "$RUN/hbase-notices.mvn.log" >&2; die "hbase-notices: mvn package failed"; }
  fi
  log "hbase-notices: jar built in $(($(now) - t0)) s"
  echo "$jar"
}

notices_bootstrap() {
  if [[ -n "${SEG_HBASE_NOTICES_BOOTSTRAP:-}" ]]; then echo "$SEG_HBASE_NOTICES_BOOTSTRAP"; return; fi
  [[ -f "$RUN/kafka/bootstrap" ]] || die "SEG_HBASE_NOTICES=1 needs Kafka: start it first (up kafka hbase) or set SEG_HBASE_NOTICES_BOOTSTRAP"
  cat "$RUN/kafka/bootstrap"
}

hbase_up() {
  local dir="$RUN/hbase"
  if running "$dir/thrift.pid"; then log "hbase already up: 127.0.0.1:$(cat "$dir/thrift_port")"; return; fi
  local cp; cp=$(cat "$(classpath hbase)")
  local notices="${SEG_HBASE_NOTICES:-0}" notices_bs=""
  if [[ "$notices" == 1 ]]; then
    notices_bs=$(notices_bootstrap)
    cp="$cp:$(notices_jar)"
  fi
  rm -rf "$dir"
  mkdir -p "$dir/conf"
  local zk thrift
  read -r zk thrift <<<"$(free_ports 2)"
  cat >"$dir/conf/hbase-site.xml" <<EOF
<?xml version="1.0"?>
<configuration>
  <property><name>hbase.cluster.distributed</name><value>false</value></property>
  <property><name>hbase.rootdir</name><value>file://$dir/root</value></property>
  <property><name>hbase.tmp.dir</name><value>$dir/tmp</value></property>
  <property><name>hbase.zookeeper.quorum</name><value>127.0.0.1</value></property>
  <property><name>hbase.zookeeper.property.clientPort</name><value>$zk</value></property>
  <property><name>hbase.zookeeper.property.dataDir</name><value>$dir/zk</value></property>
  <property><name>hbase.unsafe.stream.capability.enforce</name><value>false</value></property>
  <property><name>hbase.localcluster.assign.random.ports</name><value>true</value></property>
  <property><name>hbase.master.info.port</name><value>-1</value></property>
  <property><name>hbase.regionserver.info.port</name><value>-1</value></property>
  <property><name>hbase.thrift.info.port</name><value>-1</value></property>
  <!-- The gateway closes a client idle this long (HBase's default 60 s);
       the real tier shortens it to see the client reconnect. -->
  <property><name>hbase.thrift.server.socket.read.timeout</name><value>${SEG_HBASE_THRIFT_IDLE_MS:-60000}</value></property>
  <property><name>hbase.master.ipc.address</name><value>127.0.0.1</value></property>
  <property><name>hbase.regionserver.ipc.address</name><value>127.0.0.1</value></property>
  <property><name>hbase.unsafe.regionserver.hostname</name><value>127.0.0.1</value></property>
  <property><name>hbase.master.hostname</name><value>127.0.0.1</value></property>
  <!-- Replication (the change-notice endpoint, SEG_HBASE_NOTICES=1): look
       for new WAL entries every 100 ms, not every second (the notice lag).
       HBase 2.6's WAL reader backs off while the WAL is quiet (100 ms, 200,
       300, ... up to sleepforretries x maxretriesmultiplier), so the cap is
       also the longest a notice waits after an idle spell: 5 keeps it at
       0.5 s (HBase's defaults, 1 s x 300, allow 5 minutes). A refused
       shipment is retried as often. -->
  <property><name>replication.source.sleepforretries</name><value>100</value></property>
  <property><name>replication.source.maxretriesmultiplier</name><value>5</value></property>
</configuration>
EOF
  cat >"$dir/conf/log4j.properties" <<EOF
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{2}: %m%n
log4j.logger.org.apache.zookeeper=WARN
log4j.logger.org.apache.hadoop=WARN
log4j.logger.org.apache.hadoop.hbase=INFO
EOF
  local java=(java "${HBASE_JDK17[@]}" -XX:+UseG1GC -Djava.awt.headless=true
    -Djava.net.preferIPv4Stack=true
    "-Dhbase.log.dir=$dir" -cp "$dir/conf:$cp")
  local t0; t0=$(now)
  start_proc "$dir/master.pid" "$dir/master.log" "${java[@]}" -Xmx1g \
    org.apache.hadoop.hbase.master.HMaster start
  echo "$thrift" >"$dir/thrift_port"
  echo "${SEG_HBASE_THRIFT_SCANNER_MS:-60000}" >"$dir/thrift_scanner_ms"
  # The gateway's own conf: the same site plus its scanner timeout (how long
  # it keeps an idle scanner), which on the master would also be the region
  # servers' scanner lease. (-D on its command line does not reach it.)
  mkdir -p "$dir/thrift-conf"
  cp "$dir/conf/log4j.properties" "$dir/thrift-conf/"
  sed "s#</configuration>#  <property><name>hbase.client.scanner.timeout.period</name><value>${SEG_HBASE_THRIFT_SCANNER_MS:-60000}</value></property>\n</configuration>#" \
    "$dir/conf/hbase-site.xml" >"$dir/thrift-conf/hbase-site.xml"
  local thrift_java=("${java[@]}")
  thrift_java[-1]="$dir/thrift-conf:$cp"  # the -cp value
  start_proc "$dir/thrift.pid" "$dir/thrift.log" "${thrift_java[@]}" -Xmx512m \
    org.apache.hadoop.hbase.thrift2.ThriftServer -b 127.0.0.1 -p "$thrift" start
  local deadline=$(($(now) + HBASE_READY_S))
  while ! port_open "$thrift"; do
    running "$dir/master.pid" || { tail -40 "$dir/master.log" >&2; die "HMaster exited"; }
    running "$dir/thrift.pid" || { tail -40 "$dir/thrift.log" >&2; die "Thrift2 gateway exited"; }
    (($(now) < deadline)) || die "hbase: Thrift2 port $thrift not open in ${HBASE_READY_S}s"
    sleep 0.5
  done
  # Ready: the gateway answers table calls through to the master (create the
  # product's tables on the way, idempotently).
  local admin="$BUILD_DIR/store/seg-store-admin"
  if [[ -x "$admin" ]]; then
    "$admin" create-tables --thrift "127.0.0.1:$thrift" --wait-s "$((deadline - $(now)))" \
      >"$dir/create-tables.log" 2>&1 || { cat "$dir/create-tables.log" >&2; tail -40 "$dir/master.log" >&2; die "hbase: create-tables failed"; }
  else
    [[ "$notices" == 1 ]] && die "hbase: SEG_HBASE_NOTICES=1 needs $admin (tables) built"
    log "hbase: $admin not built; Thrift2 port open, tables not created"
  fi
  if [[ "$notices" == 1 ]]; then
    # The peer: users:e gets REPLICATION_SCOPE 1, the endpoint gets the
    # Kafka settings through the peer config.
    "${java[@]}" -Xmx256m org.segengine.notices.Setup --bootstrap "$notices_bs" \
      --topic "${SEG_HBASE_NOTICES_TOPIC:-user-changes}" >"$dir/notices-setup.log" 2>&1 ||
      { cat "$dir/notices-setup.log" >&2; die "hbase: notices peer setup failed"; }
    echo "$notices_bs" >"$dir/notices_bootstrap"
    log "hbase: change notices from users:e to $notices_bs topic ${SEG_HBASE_NOTICES_TOPIC:-user-changes}"
  fi
  log "hbase ready in $(($(now) - t0)) s: Thrift2 at 127.0.0.1:$thrift"
  write_env
}

hbase_down() {
  local dir="$RUN/hbase"
  [[ -d "$dir" ]] || return 0
  stop_pidfiles "$dir/thrift.pid" "$dir/master.pid"
  rm -rf "$dir/root" "$dir/zk" "$dir/tmp" "$dir/thrift_port" "$dir/notices_bootstrap"
  write_env
}

# ---------------------------------------------------------------- commands

status() {
  local svc f
  for svc in kafka kafka3 hbase; do
    local dir="$RUN/$svc" state="down" where=""
    for f in "$dir"/*.pid; do
      [[ -e "$f" ]] || continue
      if running "$f"; then state="up"; else state="DEAD ($(basename "$f" .pid))"; break; fi
    done
    [[ -f "$dir/bootstrap" ]] && where=$(cat "$dir/bootstrap")
    [[ -f "$dir/thrift_port" ]] && where="thrift 127.0.0.1:$(cat "$dir/thrift_port")"
    [[ -f "$dir/notices_bootstrap" ]] && where+=", notices -> $(cat "$dir/notices_bootstrap")"
    printf '%-7s %-6s %s\n' "$svc" "$state" "$where"
  done
  [[ -f "$ENV_FILE" ]] && echo "env file: $ENV_FILE"
  return 0
}

cmd="${1:-status}"
shift || true
if [[ "$cmd" == node-stop || "$cmd" == node-start ]]; then
  [[ $# -eq 2 && ( "$1" == kafka || "$1" == kafka3 ) ]] || die "usage: $cmd kafka|kafka3 N"
  kafka_node "${cmd#node-}" "$1" "$2"
  exit 0
fi
services=("$@")
[[ ${#services[@]} -gt 0 ]] || services=(kafka kafka3 hbase)
for s in "${services[@]}"; do
  case "$s" in kafka | kafka3 | hbase) ;; *) die "unknown service '$s' (kafka, kafka3, hbase)" ;; esac
done

case "$cmd" in
  up)
    # A failed start leaves nothing running.
    trap 'rc=$?; if ((rc != 0)); then for s in "${services[@]}"; do "${s%3}_down" "$s" 2>/dev/null || true; done; fi' EXIT
    trap 'exit 130' INT TERM
    for s in "${services[@]}"; do
      case "$s" in kafka) kafka_up kafka 1 ;; kafka3) kafka_up kafka3 3 ;; hbase) hbase_up ;; esac
    done
    status
    ;;
  down)
    for s in "${services[@]}"; do
      case "$s" in kafka | kafka3) kafka_down "$s" ;; hbase) hbase_down ;; esac
    done
    ;;
  status) status ;;
  *) die "usage: tools/dev services up|down|status [kafka|kafka3|hbase]..." ;;
esac
