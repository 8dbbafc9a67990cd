//! Fault injection, driven by tests through the `FaultControl` gRPC service
//! on each node's own port, so a test can make a node in another process
//! misbehave: fail Appends with UNAVAILABLE or FAILED_PRECONDITION
//! (WrongServer), for a while or the next N, or answer them late.
//!
//! Latency is applied before the append is processed, so an Append whose
//! client gives up during the delay stores nothing. A failed Append stores
//! nothing either. The failure text is plain, like the store errors HStreamDB
//! sends with UNAVAILABLE, so clients take the same path as with the real
//! thing.

use crate::service::error::ApiError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;
use tonic::{Request, Response, Status};
use weir_proto::pb::devserver::fault_control_server::FaultControl;
use weir_proto::pb::devserver::{FaultPlan, GetFaultsRequest, InjectedFailure};

#[derive(Debug, Default)]
pub(crate) struct Faults {
    plan: Mutex<Plan>,
    injected: AtomicU64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Plan {
    fail_until: Option<Instant>,
    fail_next: u64,
    latency: Duration,
    fail_with: InjectedFailure,
}

impl Faults {
    fn with_plan<T>(&self, f: impl FnOnce(&mut Plan) -> T) -> T {
        f(&mut self.plan.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Applies the plan to one Append: waits the configured latency, then
    /// fails it if the plan says so.
    pub(crate) async fn before_append(&self) -> Result<(), Status> {
        let (latency, fail_with) = self.with_plan(|plan| (plan.latency, plan.fail_with));
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let fail = self.with_plan(|plan| {
            if plan.fail_until.is_some_and(|until| Instant::now() < until) {
                true
            } else if plan.fail_next > 0 {
                plan.fail_next -= 1;
                true
            } else {
                false
            }
        });
        if fail {
            self.injected.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(?fail_with, "failing an Append as the fault plan says");
            return Err(match fail_with {
                InjectedFailure::Unavailable => {
                    Status::unavailable("NOSEQUENCER: injected by the weir devserver fault plan")
                }
                InjectedFailure::WrongServer => Status::from(ApiError::WrongServer(
                    "injected by the weir devserver fault plan".into(),
                )),
            });
        }
        Ok(())
    }

    fn snapshot(&self) -> FaultPlan {
        let plan = self.with_plan(|plan| *plan);
        let remaining = plan.fail_until.map_or(Duration::ZERO, |until| {
            until.saturating_duration_since(Instant::now())
        });
        FaultPlan {
            fail_appends_for_ms: millis(remaining),
            append_latency_ms: millis(plan.latency),
            injected_failures: self.injected.load(Ordering::Relaxed),
            fail_next_appends: plan.fail_next,
            fail_with: plan.fail_with as i32,
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[tonic::async_trait]
impl FaultControl for Faults {
    async fn set_faults(&self, request: Request<FaultPlan>) -> Result<Response<FaultPlan>, Status> {
        let wanted = request.into_inner();
        let now = Instant::now();
        self.with_plan(|plan| {
            *plan = Plan {
                fail_until: (wanted.fail_appends_for_ms > 0)
                    .then(|| now.checked_add(Duration::from_millis(wanted.fail_appends_for_ms)))
                    .flatten(),
                fail_next: wanted.fail_next_appends,
                latency: Duration::from_millis(wanted.append_latency_ms),
                fail_with: InjectedFailure::try_from(wanted.fail_with)
                    .unwrap_or(InjectedFailure::Unavailable),
            };
        });
        tracing::info!(
            fail_appends_for_ms = wanted.fail_appends_for_ms,
            fail_next_appends = wanted.fail_next_appends,
            append_latency_ms = wanted.append_latency_ms,
            fail_with = wanted.fail_with,
            "fault plan set"
        );
        Ok(Response::new(self.snapshot()))
    }

    async fn get_faults(
        &self,
        _request: Request<GetFaultsRequest>,
    ) -> Result<Response<FaultPlan>, Status> {
        Ok(Response::new(self.snapshot()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fail_next_counts_down_and_counts_failures() {
        let faults = Faults::default();
        faults
            .set_faults(Request::new(FaultPlan {
                fail_next_appends: 2,
                ..Default::default()
            }))
            .await
            .expect("set");
        for _ in 0..2 {
            let status = faults.before_append().await.expect_err("injected");
            assert_eq!(status.code(), tonic::Code::Unavailable);
        }
        faults.before_append().await.expect("plan used up");
        let plan = faults.snapshot();
        assert_eq!(plan.injected_failures, 2);
        assert_eq!(plan.fail_next_appends, 0);
    }
}
