#!/usr/bin/env python3
"""Reads a local-stack config file (config/local.yaml) and prints shell
assignments for tools/local-stack.sh to eval.

  eval "$(python3 tools/stack_config.py config/local.yaml)"

Standard library only: a small YAML subset parser (nested maps by
indentation, scalars, quoted strings, [a, b] and "- item" lists, # comments)
covers the stack config; anything else is a clear error with the line. The
keys are documented in config/production-example.yaml; an unknown key is an
error so that a typo never silently starts a local part instead of a real one.
"""
import shlex
import sys


class ConfigError(Exception):
    pass


def scalar(text):
    text = text.strip()
    if text.startswith(("'", '"')):
        if len(text) < 2 or text[-1] != text[0]:
            raise ConfigError(f"unterminated string {text}")
        return text[1:-1]
    if text.startswith("["):
        if not text.endswith("]"):
            raise ConfigError(f"unterminated list {text}")
        inner = text[1:-1].strip()
        return [scalar(x) for x in inner.split(",")] if inner else []
    if text == "{}":
        return {}
    if text in ("true", "false"):
        return text == "true"
    if text in ("", "null", "~"):
        return None
    return text


def strip_comment(line):
    quote = None
    for i, c in enumerate(line):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def parse(text, source):
    lines = []
    for n, raw in enumerate(text.splitlines(), 1):
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise ConfigError(f"{source}:{n}: tabs are not allowed for indentation")
        line = strip_comment(raw).rstrip()
        if line.strip() and line.strip() != "---":
            lines.append((n, len(line) - len(line.lstrip()), line.strip()))
    pos = 0

    def block(indent):
        nonlocal pos
        if pos < len(lines) and lines[pos][2].startswith("- "):
            out = []
            while pos < len(lines) and lines[pos][1] == indent and lines[pos][2].startswith("- "):
                out.append(scalar(lines[pos][2][2:]))
                pos += 1
            return out
        out = {}
        while pos < len(lines) and lines[pos][1] == indent:
            n, _, body = lines[pos]
            key, sep, rest = body.partition(":")
            if not sep or (rest and not rest.startswith(" ")):
                raise ConfigError(f"{source}:{n}: expected 'key: value', got '{body}'")
            key = key.strip().strip("'\"")
            pos += 1
            if rest.strip():
                out[key] = scalar(rest)
            elif pos < len(lines) and lines[pos][1] > indent:
                out[key] = block(lines[pos][1])
            else:
                out[key] = None
        if pos < len(lines) and lines[pos][1] > indent:
            n = lines[pos][0]
            raise ConfigError(f"{source}:{n}: unexpected indentation")
        return out

    result = block(0) if lines else {}
    if pos != len(lines):
        raise ConfigError(f"{source}:{lines[pos][0]}: unexpected indentation")
    return result


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
        sets["ingest"].append(f"ingest.table={store['table']}")
        sets["segmenter"].append(f"segmenter.table={store['table']}")
        sets["stats"].append(f"segmenter.table={store['table']}")
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
