"""weir's Python SDK: plugins as components of the `weir:rule` world
(guest-sdk/wit/weir-rule.wit), built with componentize-py. Written into a
project by `weir plugin new --lang python`; the field table below is ABI v1's
(guest-sdk/ABI.md) and is never renumbered, only added to."""

import json
import re

from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.types import BatchResult, EventError, Output, RecordFlag

# EMQX's column name of each field id (index = id).
FIELD_NAMES = [@FIELD_NAMES@]

_action = {"stream": "", "streams": [], "partition_key": None, "format": "json"}
_placeholder = re.compile(r"\$\{([^}]+)\}")


def init(init_document, setup=None):
    """Reads the init document and calls setup(config) with the manifest's
    [config], if given. An exception from either fails the load with its
    message, as a result error the host reports ("init failed: ...")."""
    global _action
    try:
        doc = json.loads(init_document)
        _action = doc["action"]
        if setup is not None:
            setup(doc.get("config") or {})
    except Exception as error:
        raise Err(str(error) or type(error).__name__) from error


def process(batch, rule):
    """Runs rule(event, emit) on every event of a batch and returns the
    BatchResult. `event` is a dict of the fields by column name
    (event["topic"], event["flags.dup"]), with "event" the kind
    ("message.publish"). emit(record, key=None, target="", raw=None) adds an
    output: a dict is stored as an HRecord, str or bytes as raw bytes; key
    defaults to the manifest's partition_key template. A rule that raises
    fails that event only: its outputs are dropped and the error is reported
    (code 1)."""
    outputs = []
    errors = []
    for index, raw in enumerate(batch):
        mark = len(outputs)
        try:
            event = columns(raw)

            def emit(record, key=None, target="", raw=None, event=event, index=index):
                outputs.append(_output(index, event, record, key, target, raw))

            rule(event, emit)
        except Exception as error:  # a rule's error fails its event only
            del outputs[mark:]
            errors.append(EventError(index, 1, str(error) or type(error).__name__))
    return BatchResult(outputs, errors)


def columns(event):
    """An event's fields by column name, as plain Python values."""
    out = {"event": event.kind.name.lower().replace("_", ".", 1)}
    for field in event.fields:
        if field.id < len(FIELD_NAMES) and FIELD_NAMES[field.id]:
            value = getattr(field.value, "value", None)
            if type(field.value).__name__.endswith("_Json"):
                value = json.loads(value)
            out[FIELD_NAMES[field.id]] = value
    return out


def id_hex(data):
    """A message id (16 bytes) as EMQX prints it: 32 upper-case hex digits."""
    return None if data is None else data.hex().upper()


def text(data):
    """Bytes (a payload) as text; invalid UTF-8 becomes U+FFFD."""
    return None if data is None else data.decode("utf-8", "replace")


def render(template, event):
    """${column} placeholders filled from event; absent fields give nothing."""

    def one(match):
        value = event.get(match.group(1))
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return json.dumps(value) if isinstance(value, (dict, list, bool)) else str(value)

    return _placeholder.sub(one, template)


def log(level, message):
    """A line in weir's log: level is "error", "warn", "info", "debug" or "trace"."""
    host.log(getattr(host.Level, level.upper()), message)


def _output(index, event, record, key, target, raw):
    if raw is None:
        raw = isinstance(record, (str, bytes)) or _action.get("format") == "raw"
    if isinstance(record, bytes):
        data = record
    elif isinstance(record, str):
        data = record.encode()
    else:
        data = json.dumps(record).encode()
    if key is None:
        template = _action.get("partition_key")
        key = render(template, event) if template else ""
    return Output(index, RecordFlag.RAW if raw else RecordFlag.JSON, target, key, data)
