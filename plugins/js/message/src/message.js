// weir's message plugin in JavaScript: every message on the manifest's
// sources becomes {"id", "topic", "qos", "payload"} in the action's stream,
// keyed by the action's partition_key template: the record of
// plugins/rust/message.
import * as weir from './weir.js';

export function init(initDocument) {
  weir.init(initDocument);
}

export function process(batch) {
  return weir.process(batch, (event, emit) => {
    emit({
      id: weir.idHex(event.id),
      topic: event.topic,
      qos: event.qos,
      payload: weir.text(event.payload),
    });
  });
}
