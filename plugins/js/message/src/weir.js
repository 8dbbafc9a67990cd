// weir's JavaScript SDK: plugins as components of the `weir:rule` world
// (guest-sdk/wit/weir-rule.wit), built with componentize-js. Written into a
// project by `weir plugin new --lang js`; the field table below is ABI v1's
// (guest-sdk/ABI.md) and is never renumbered, only added to.
import { log } from 'weir:rule/host@1.0.0';

/** EMQX's column name of each field id (index = id). */
export const FIELD_NAMES = ["", "id", "clientid", "username", "topic", "qos", "flags.dup", "flags.retain", "payload", "pub_props", "peerhost", "publish_received_at", "timestamp", "node", "peername", "sockname", "proto_name", "proto_ver", "keepalive", "clean_start", "expiry_interval", "connected_at", "reason", "disconnected_at", "from_clientid", "from_username", "reason_code", "sub_props", "unsub_props", "puback_props"];

const utf8 = new TextDecoder();
const encoder = new TextEncoder();
let action = { stream: '', streams: [], partition_key: null, format: 'json' };

/**
 * Reads the init document and calls `setup(config)` with the manifest's
 * `[config]`, if given. An error from either fails the load with its
 * message, as a result error the host reports ("init failed: ...").
 */
export function init(initDocument, setup) {
  try {
    const doc = JSON.parse(initDocument);
    action = doc.action;
    if (setup) setup(doc.config ?? {});
  } catch (error) {
    throw String(error?.message ?? error);
  }
}

/**
 * Runs `rule(event, emit)` on every event of a batch. `event` has the
 * fields by column name (`event.topic`, `event['flags.dup']`), and `event`
 * the kind (`message.publish`). `emit(record, {key, target, raw})` adds an
 * output: an object is stored as an HRecord, a string or Uint8Array as raw
 * bytes; `key` defaults to the manifest's partition_key template, `target`
 * to its stream. A rule that throws fails that event only: its outputs are
 * dropped and the error is reported (code 1).
 */
export function process(batch, rule) {
  const outputs = [];
  const errors = [];
  batch.forEach((raw, index) => {
    const mark = outputs.length;
    try {
      const event = columns(raw);
      rule(event, (record, options = {}) => {
        outputs.push(output(index, event, record, options));
      });
    } catch (error) {
      outputs.length = mark;
      errors.push({ event: index, code: 1, message: String(error?.message ?? error) });
    }
  });
  return { outputs, errors };
}

/** An event's fields by column name, as plain JavaScript values. */
export function columns(event) {
  const out = { event: event.kind.replace('-', '.') };
  for (const { id, value } of event.fields) {
    const name = FIELD_NAMES[id];
    if (name) out[name] = plain(value);
  }
  return out;
}

/** A message id (16 bytes) as EMQX prints it: 32 upper-case hex digits. */
export function idHex(bytes) {
  if (!bytes) return null;
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s.toUpperCase();
}

/** Bytes (a payload) as text; invalid UTF-8 becomes U+FFFD. */
export function text(bytes) {
  return bytes === undefined || bytes === null ? null : utf8.decode(bytes);
}

/** `${column}` placeholders filled from `event`; absent fields give nothing. */
export function render(template, event) {
  return template.replace(/\$\{([^}]+)\}/g, (_, name) => {
    const v = event[name];
    if (v === undefined || v === null) return '';
    if (typeof v === 'string') return v;
    if (v instanceof Uint8Array) return utf8.decode(v);
    return typeof v === 'object' ? stringify(v) : String(v);
  });
}

export { log };

function output(index, event, record, options) {
  const raw = options.raw ?? (typeof record === 'string' || record instanceof Uint8Array
    ? true : action.format === 'raw');
  const bytes = record instanceof Uint8Array ? record
    : encoder.encode(typeof record === 'string' ? record : stringify(record));
  const template = options.key === undefined ? action.partition_key : null;
  return {
    event: index,
    flag: raw ? 'raw' : 'json',
    target: options.target ?? '',
    key: options.key ?? (template ? render(template, event) : ''),
    record: bytes,
  };
}

function plain(value) {
  switch (value.tag) {
    case 'null': return null;
    case 'int': {
      const n = value.val;
      return n >= Number.MIN_SAFE_INTEGER && n <= Number.MAX_SAFE_INTEGER ? Number(n) : n;
    }
    case 'json': return JSON.parse(value.val);
    default: return value.val;
  }
}

function stringify(value) {
  return JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? v.toString() : v));
}
