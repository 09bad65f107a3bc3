#!/usr/bin/env python3
"""Reads a local-stack config file (config/stack-local.yaml) and prints shell
assignments for tools/local-stack.sh to eval.

  eval "$(python3 tools/stack_config.py config/stack-local.yaml)"

YAML through PyYAML (python3-yaml, tools/setup-deps.sh). The keys are
documented in config/stack-production-example.yaml; an unknown key is an
error so that a typo never silently starts a local part instead of a real one.
The binaries' own keys (what `set:` passes through) are in
config/seg.example.yaml.
"""
import shlex
import sys

import yaml


class ConfigError(Exception):
    pass


def parse(text, source):
    """The file as a dict, through a real YAML parser (Debian's python3-yaml)."""
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: {e}") from None
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise ConfigError(f"{source}: the top level must be a map")
    return cfg


def flatten(value, prefix=""):
    """{"a": {"b": 1}} -> [("a.b", "1")]; lists become [x, y]."""
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            out += flatten(v, f"{prefix}.{k}" if prefix else k)
        return out
    if isinstance(value, list):
        return [(prefix, "[" + ", ".join(str(x) for x in value) + "]")]
    if isinstance(value, bool):
        return [(prefix, "true" if value else "false")]
    if isinstance(value, float) and value.is_integer():
        return [(prefix, str(int(value)))]
    return [(prefix, "" if value is None else str(value))]


# section -> allowed keys (None: any nested keys, passed through).
SCHEMA = {
    "kafka": {"bootstrap_servers", "properties"},
    "store": {"host", "port", "transport", "protocol", "table"},
    "redis": {"host", "port", "cluster", "seeds", "username", "password", "shards"},
    "segmenters": None,
    "loadgen": {"users", "rate", "seed"},
    "set": {"ingest", "segmenter", "stats"},
}


def emit(cfg, source):
    out = {}
    sets = {"ingest": [], "segmenter": [], "stats": []}
    for section, value in cfg.items():
        if section not in SCHEMA:
            raise ConfigError(f"{source}: unknown section '{section}' (known: {', '.join(SCHEMA)})")
        if section == "segmenters":
            out["SEGMENTERS"] = str(value)
            continue
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {section}: expected a map")
        for key in value:
            if key not in SCHEMA[section]:
                raise ConfigError(f"{source}: unknown key {section}.{key}")
    kafka = cfg.get("kafka") or {}
    out["KAFKA_EXTERNAL"] = str(kafka.get("bootstrap_servers") or "")
    loadgen_properties = []  # seg-loadgen takes librdkafka properties as -X name=value
    for k, v in flatten(kafka.get("properties") or {}, "kafka.properties"):
        sets["ingest"].append(f"{k}={v}")
        sets["segmenter"].append(f"{k}={v}")
        loadgen_properties.append(f"{k[len('kafka.properties.'):]}={v}")
    store = cfg.get("store") or {}
    if store.get("host"):
        out["STORE_EXTERNAL"] = f"{store['host']}:{store.get('port') or 9090}"
        # Every store client takes the same store.thrift.* keys.
        for k in ("transport", "protocol"):
            if store.get(k):
                for binary in ("ingest", "segmenter", "stats"):
                    sets[binary].append(f"store.thrift.{k}={store[k]}")
    if store.get("table"):
        for binary in ("ingest", "segmenter", "stats"):
            sets[binary].append(f"tables.users.name={store['table']}")
    redis = cfg.get("redis") or {}
    seeds = redis.get("seeds") or []
    if isinstance(seeds, str):
        seeds = [seeds]
    if redis.get("cluster") and not seeds and not redis.get("host"):
        raise ConfigError(f"{source}: redis.cluster needs redis.seeds (host:port of some nodes)")
    if redis.get("host") or seeds:
        out["REDIS_EXTERNAL"] = seeds[0] if seeds else f"{redis['host']}:{redis.get('port') or 6379}"
        for prefix in ("segmenter", "stats"):
            if seeds:
                sets[prefix].append("stats.redis.seeds=[" + ", ".join(seeds) + "]")
            if redis.get("cluster"):
                sets[prefix].append("stats.redis.cluster=true")
            for k in ("username", "password"):
                if redis.get(k):
                    sets[prefix].append(f"stats.redis.{k}={redis[k]}")
    if redis.get("shards"):
        for prefix in ("segmenter", "stats"):
            sets[prefix].append(f"stats.shards={redis['shards']}")
    loadgen = cfg.get("loadgen") or {}
    for k in ("users", "rate", "seed"):
        if loadgen.get(k) is not None:
            out[f"LOADGEN_{k.upper()}"] = str(loadgen[k])
    for part, value in (cfg.get("set") or {}).items():
        sets[part] += [f"{k}={v}" for k, v in flatten(value or {})]

    lines = [f"{k}={shlex.quote(v)}" for k, v in out.items()]
    lines.append("LOADGEN_KAFKA_ARGS=(" +
                 " ".join(f"-X {shlex.quote(x)}" for x in loadgen_properties) + ")")
    for part, items in sets.items():
        args = " ".join(f"--set {shlex.quote(x)}" for x in items)
        lines.append(f"{part.upper()}_SETS=({args})")
    return "\n".join(lines)


def main():
    if len(sys.argv) != 2:
        print("usage: stack_config.py FILE", file=sys.stderr)
        return 2
    path = sys.argv[1]
    try:
        with open(path) as f:
            text = f.read()
        print(emit(parse(text, path), path))
    except (OSError, ConfigError) as e:
        print(f"local-stack: config: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
