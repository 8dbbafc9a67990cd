//! A plugin that misbehaves on purpose, for weir's isolation tests.
//!
//! The payload says what to do: `trap` panics (a trap), `loop` spins
//! forever (the deadline must stop it), `hog` allocates until the memory cap
//! stops it, `error` returns a per-event error, `log` writes to the log and
//! to stdout/stderr (which reach weir's log under wasm32-wasip1), `flood`
//! logs without end (the log rate and the deadline must stop it), `sleep`
//! sleeps for a minute (weir refuses to block, so it traps). Anything
//! else is echoed as a RAW record, so the tests can tell good events got
//! through.

use weir_guest_sdk::{Error, Event, Outputs, info, rule};

#[rule(fields = ["topic", "payload"])]
pub fn misbehave(event: &Event<'_>, out: &mut Outputs<'_>) -> Result<(), Error> {
    match event.payload().as_bytes() {
        b"trap" => panic!("asked to trap on {}", event.topic()),
        b"loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        b"hog" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
            }
        }
        b"error" => Err(Error::new(42, "asked to fail")),
        b"flood" => loop {
            info!("flooding the log from {}", event.topic());
        },
        b"sleep" => {
            std::thread::sleep(std::time::Duration::from_secs(60));
            out.emit().raw().bytes(b"slept");
            Ok(())
        }
        b"log" => {
            info!("log line from {}", event.topic());
            println!("stdout line from {}", event.topic());
            eprintln!("stderr line from {}", event.topic());
            out.emit().raw().bytes(b"logged");
            Ok(())
        }
        payload => {
            out.emit().raw().bytes(payload);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_guest_sdk::testing::{Harness, TestEvent};

    #[test]
    fn echoes_good_events_and_fails_on_request() {
        let mut h = Harness::new(RULE).raw().start().expect("init succeeds");
        let result = h.run(&[
            TestEvent::publish("bad/1", b"ok"),
            TestEvent::publish("bad/2", b"error"),
        ]);
        assert_eq!(result.outputs.len(), 1);
        assert_eq!(result.outputs[0].record, b"ok");
        assert_eq!(result.errors, vec![(1, 42, "asked to fail".to_owned())]);
    }
}
