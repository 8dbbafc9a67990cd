//! Whole MQTT packets off a read buffer, on rumqttc's `mqttbytes` codecs
//! for 3.1.1 and 5, for both ends weir speaks: the listener (weir as a
//! server) and the bridge (weir as a client). One place says what a partial
//! frame, an oversized one and a malformed one are, so both ends report them
//! alike.
//!
//! The codec has one gap both ends meet: an MQTT 5 DISCONNECT without a
//! reason code (remaining length 0, which means "normal"), which it refuses.

use bytes::BytesMut;
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;

/// Why the byte stream cannot be read as MQTT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("packet of {size} bytes is larger than the limit of {max}")]
    TooLarge { size: usize, max: usize },
    #[error("malformed packet: {0}")]
    Malformed(String),
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// The next MQTT 3.1.1 packet, if a whole one is at the start of `buf`
/// (it is then taken off); `max` bounds its size.
pub(crate) fn read_v4(buf: &mut BytesMut, max: usize) -> Result<Option<v4::Packet>, DecodeError> {
    match v4::Packet::read(buf, max) {
        Ok(packet) => Ok(Some(packet)),
        Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
        Err(rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(size)) => {
            Err(DecodeError::TooLarge { size, max })
        }
        Err(e) => Err(DecodeError::Malformed(e.to_string())),
    }
}

/// The same for MQTT 5.
pub(crate) fn read_v5(buf: &mut BytesMut, max: usize) -> Result<Option<v5::Packet>, DecodeError> {
    if buf.starts_with(&[0xE0, 0x00]) {
        let _ = buf.split_to(2);
        return Ok(Some(v5::Packet::Disconnect(v5::Disconnect {
            reason_code: v5::DisconnectReasonCode::NormalDisconnection,
            properties: None,
        })));
    }
    let limit = u32::try_from(max).unwrap_or(u32::MAX);
    match v5::Packet::read(buf, Some(limit)) {
        Ok(packet) => Ok(Some(packet)),
        Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
        Err(rumqttc::v5::mqttbytes::Error::PayloadSizeLimitExceeded { pkt_size, .. }) => {
            Err(DecodeError::TooLarge {
                size: pkt_size,
                max,
            })
        }
        Err(e) => Err(DecodeError::Malformed(e.to_string())),
    }
}
