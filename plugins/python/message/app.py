"""weir's message plugin in Python: every message on the manifest's sources
becomes {"id", "topic", "qos", "payload"} in the action's stream, keyed by the
action's partition_key template: the record of plugins/rust/message."""

import weir
import wit_world


def rule(event, emit):
    emit(
        {
            "id": weir.id_hex(event.get("id")),
            "topic": event.get("topic"),
            "qos": event.get("qos"),
            "payload": weir.text(event.get("payload")),
        }
    )


class WitWorld(wit_world.WitWorld):
    def init(self, init_document: str) -> None:
        weir.init(init_document)

    def process(self, batch):
        return weir.process(batch, rule)
