//! The listener's broker: which connection subscribes to which topic
//! filters, and handing each published message to the bounded queues of the
//! connections whose filters match it.
//!
//! Routing is separate from ingest: a message is routed when it arrives,
//! whether or not a rule stores it, and routing never waits (a full
//! subscriber queue drops that delivery, it does not slow the publisher), so
//! the publisher's PUBACK still waits only for its records to be stored.
//! Matching uses weir's one topic-filter matcher (`weir_guest_sdk::topic`) over
//! the subscriptions: a listener is an edge broker with few subscribers, so
//! a scan costs less than keeping an index in step.

use super::codec::ForwardProps;
use crate::event::{MessagePublish, Receiver};
use crate::ingress::Qos;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;
use weir_guest_sdk::topic::matches as topic_matches;

/// The highest QoS weir grants a subscription: QoS 2 deliveries would need
/// the PUBREC/PUBREL state machine on the sending side, which a gateway
/// whose job is ingest does not carry.
pub(super) const MAX_GRANTED_QOS: Qos = Qos::AtLeastOnce;

/// How one subscription was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::ingress) struct SubOptions {
    pub(in crate::ingress) qos: Qos,
    /// MQTT 5 no-local: the subscriber's own messages are not sent to it.
    pub(in crate::ingress) no_local: bool,
}

/// A message on its way to one subscriber.
#[derive(Debug, Clone)]
pub(super) struct Outgoing {
    pub(super) message: Arc<MessagePublish>,
    /// The lower of the message's QoS and the subscription's.
    pub(super) qos: Qos,
    pub(super) props: Option<ForwardProps>,
}

/// One subscribing connection.
#[derive(Debug)]
struct Subscriber {
    client_id: String,
    receiver: Receiver,
    filters: BTreeMap<String, SubOptions>,
    queue: mpsc::Sender<Outgoing>,
}

/// A delivery the broker could not make.
#[derive(Debug)]
pub(super) struct NotDelivered {
    pub(super) to: Receiver,
    pub(super) qos: Qos,
    /// `queue_full` or `no_local`.
    pub(super) reason: &'static str,
}

/// What happened to a published message.
#[derive(Debug, Default)]
pub(super) struct Routed {
    /// Subscribers whose filters matched it.
    pub(super) matched: usize,
    pub(super) not_delivered: Vec<NotDelivered>,
}

/// Every subscription of one listener, by connection id.
#[derive(Debug, Default)]
pub(super) struct Broker {
    subscribers: RwLock<HashMap<u64, Subscriber>>,
    /// How many connections have a subscription, so that publishing with
    /// none costs one atomic load and no lock.
    subscribed: AtomicUsize,
}

impl Broker {
    /// Registers connection `id` (whose queue is `queue`) so it can
    /// subscribe; `filters` are those its resumed session had.
    pub(super) fn attach(
        &self,
        id: u64,
        client_id: &str,
        receiver: Receiver,
        filters: BTreeMap<String, SubOptions>,
        queue: mpsc::Sender<Outgoing>,
    ) {
        let mut subscribers = self.write();
        if !filters.is_empty() {
            self.subscribed.fetch_add(1, Ordering::AcqRel);
        }
        subscribers.insert(
            id,
            Subscriber {
                client_id: client_id.to_owned(),
                receiver,
                filters,
                queue,
            },
        );
    }

    /// Forgets connection `id` and returns its subscriptions, for its
    /// session to keep.
    pub(super) fn detach(&self, id: u64) -> BTreeMap<String, SubOptions> {
        let removed = self.write().remove(&id);
        match removed {
            Some(s) => {
                if !s.filters.is_empty() {
                    self.subscribed.fetch_sub(1, Ordering::AcqRel);
                }
                s.filters
            }
            None => BTreeMap::new(),
        }
    }

    /// Whether any connection subscribes to anything.
    pub(super) fn has_subscribers(&self) -> bool {
        self.subscribed.load(Ordering::Acquire) > 0
    }

    /// Adds or replaces a subscription of connection `id`.
    pub(super) fn subscribe(&self, id: u64, filter: &str, options: SubOptions) {
        if let Some(s) = self.write().get_mut(&id) {
            if s.filters.is_empty() {
                self.subscribed.fetch_add(1, Ordering::AcqRel);
            }
            s.filters.insert(filter.to_owned(), options);
        }
    }

    /// Removes a subscription of connection `id`, returning it if it existed.
    pub(super) fn unsubscribe(&self, id: u64, filter: &str) -> Option<SubOptions> {
        let mut subscribers = self.write();
        let s = subscribers.get_mut(&id)?;
        let removed = s.filters.remove(filter);
        if removed.is_some() && s.filters.is_empty() {
            self.subscribed.fetch_sub(1, Ordering::AcqRel);
        }
        removed
    }

    /// Hands `message` (published by `publisher`) to every subscriber with
    /// a matching filter, at the highest QoS among its matching filters
    /// (MQTT-3.3.4-2: one copy per subscriber).
    pub(super) fn route(
        &self,
        message: &Arc<MessagePublish>,
        publisher: &str,
        props: Option<&ForwardProps>,
    ) -> Routed {
        let mut routed = Routed::default();
        if self.subscribed.load(Ordering::Acquire) == 0 {
            return routed;
        }
        let Some(message_qos) = Qos::from_level(message.qos) else {
            return routed;
        };
        let subscribers = self.subscribers.read().unwrap_or_else(|p| p.into_inner());
        for s in subscribers.values() {
            let best = s
                .filters
                .iter()
                .filter(|(filter, _)| topic_matches(&message.topic, filter))
                .map(|(_, options)| *options)
                .reduce(|a, b| SubOptions {
                    qos: a.qos.max(b.qos),
                    no_local: a.no_local && b.no_local,
                });
            let Some(options) = best else { continue };
            routed.matched += 1;
            let qos = options.qos.min(message_qos);
            if options.no_local && s.client_id == publisher {
                routed.not_delivered.push(NotDelivered {
                    to: s.receiver.clone(),
                    qos,
                    reason: "no_local",
                });
                continue;
            }
            let outgoing = Outgoing {
                message: message.clone(),
                qos,
                props: props.cloned(),
            };
            if s.queue.try_send(outgoing).is_err() {
                // Full, or the connection is closing (it reports what it
                // still held itself).
                routed.not_delivered.push(NotDelivered {
                    to: s.receiver.clone(),
                    qos,
                    reason: "queue_full",
                });
            }
        }
        routed
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<u64, Subscriber>> {
        self.subscribers.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{MessageId, PublishFlags};

    fn receiver(id: &str) -> Receiver {
        Receiver {
            clientid: id.into(),
            username: None,
            peerhost: None,
            peername: None,
        }
    }

    fn message(topic: &str, qos: u8) -> Arc<MessagePublish> {
        Arc::new(MessagePublish {
            id: MessageId(1),
            clientid: Some("pub".into()),
            username: None,
            topic: topic.into(),
            qos,
            flags: PublishFlags::default(),
            payload: bytes::Bytes::from_static(b"x"),
            pub_props: serde_json::Map::new(),
            peerhost: None,
            publish_received_at: 0,
            timestamp: 0,
            node: "n".into(),
        })
    }

    const QOS1: SubOptions = SubOptions {
        qos: Qos::AtLeastOnce,
        no_local: false,
    };

    #[test]
    fn messages_reach_matching_subscribers_once_at_the_lower_qos() {
        let broker = Broker::default();
        let (tx, mut rx) = mpsc::channel(8);
        broker.attach(1, "sub", receiver("sub"), BTreeMap::new(), tx);
        assert_eq!(broker.route(&message("t/1", 1), "pub", None).matched, 0);

        broker.subscribe(1, "t/#", QOS1);
        broker.subscribe(
            1,
            "t/+",
            SubOptions {
                qos: Qos::AtMostOnce,
                no_local: false,
            },
        );
        let routed = broker.route(&message("t/1", 2), "pub", None);
        assert_eq!((routed.matched, routed.not_delivered.len()), (1, 0));
        let got = rx.try_recv().expect("one delivery");
        assert_eq!(got.qos, Qos::AtLeastOnce);
        assert!(rx.try_recv().is_err(), "one copy per subscriber");

        assert_eq!(broker.route(&message("u/1", 1), "pub", None).matched, 0);
        assert_eq!(broker.unsubscribe(1, "t/#"), Some(QOS1));
        assert_eq!(broker.unsubscribe(1, "t/#"), None);
        let routed = broker.route(&message("t/1", 1), "pub", None);
        assert_eq!(rx.try_recv().expect("via t/+").qos, Qos::AtMostOnce);
        assert_eq!(routed.matched, 1);
    }

    #[test]
    fn a_full_queue_and_no_local_drop_the_delivery() {
        let broker = Broker::default();
        let (tx, _rx) = mpsc::channel(1);
        broker.attach(1, "sub", receiver("sub"), BTreeMap::new(), tx);
        broker.subscribe(
            1,
            "t/#",
            SubOptions {
                qos: Qos::AtLeastOnce,
                no_local: true,
            },
        );
        let own = broker.route(&message("t/1", 1), "sub", None);
        assert_eq!(own.not_delivered[0].reason, "no_local");
        assert!(
            broker
                .route(&message("t/1", 1), "pub", None)
                .not_delivered
                .is_empty()
        );
        let full = broker.route(&message("t/1", 1), "pub", None);
        assert_eq!(full.not_delivered[0].reason, "queue_full");
        assert_eq!(full.not_delivered[0].to.clientid, "sub");
    }

    #[test]
    fn detaching_returns_the_subscriptions_for_the_session() {
        let broker = Broker::default();
        let (tx, _rx) = mpsc::channel(1);
        broker.attach(1, "sub", receiver("sub"), BTreeMap::new(), tx.clone());
        broker.subscribe(1, "a/b", QOS1);
        let kept = broker.detach(1);
        assert_eq!(kept, BTreeMap::from([("a/b".to_owned(), QOS1)]));
        assert_eq!(broker.route(&message("a/b", 1), "pub", None).matched, 0);
        broker.attach(2, "sub", receiver("sub"), kept, tx);
        assert_eq!(broker.route(&message("a/b", 1), "pub", None).matched, 1);
    }
}
