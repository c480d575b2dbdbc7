//! One batch on the wire: a script call per team, and what each job's answer is, including
//! whether a call that failed is sent again.

use std::collections::HashMap;
use std::sync::Arc;

use redis::{Script, Value};
use tokio::sync::{mpsc, oneshot};

use super::{Job, Part, RESEND_WINDOW, Release, SettleError, Timing};
use crate::connect::redis::{Delivery, RedisConnection, delivery};
use crate::ids::TeamId;

/// Sends one batch: a script call per team (see [`super::Call::team`]), pipelined on the
/// connection.
/// Returns the jobs to send again, whose calls surely did not run.
pub(super) async fn send(
    settlements: Vec<Job>,
    admissions: Vec<Job>,
    redis: RedisConnection,
    script: Arc<Script>,
    timing: Timing,
    requeue: mpsc::WeakUnboundedSender<Job>,
) -> Vec<Job> {
    let calls = by_team(settlements, admissions)
        .into_iter()
        .map(|(settlements, admissions)| {
            send_one(
                settlements,
                admissions,
                redis.clone(),
                &script,
                timing,
                &requeue,
            )
        });
    futures_util::future::join_all(calls)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Splits a batch by team, keeping each team's jobs in their order.
pub(super) fn by_team(settlements: Vec<Job>, admissions: Vec<Job>) -> Vec<(Vec<Job>, Vec<Job>)> {
    let mut teams: Vec<TeamId> = Vec::new();
    let mut groups: Vec<(Vec<Job>, Vec<Job>)> = Vec::new();
    for (job, is_settlement) in settlements
        .into_iter()
        .map(|job| (job, true))
        .chain(admissions.into_iter().map(|job| (job, false)))
    {
        let team = job.call().team;
        let i = teams.iter().position(|t| *t == team).unwrap_or_else(|| {
            teams.push(team);
            groups.push((Vec::new(), Vec::new()));
            groups.len() - 1
        });
        let (team_settlements, team_admissions) = &mut groups[i];
        if is_settlement {
            team_settlements.push(job);
        } else {
            team_admissions.push(job);
        }
    }
    groups
}

async fn send_one(
    settlements: Vec<Job>,
    admissions: Vec<Job>,
    mut redis: RedisConnection,
    script: &Script,
    timing: Timing,
    requeue: &mpsc::WeakUnboundedSender<Job>,
) -> Vec<Job> {
    // The script takes lease renewals after the settlements and before the admissions.
    let (leases, admissions): (Vec<Job>, Vec<Job>) = admissions
        .into_iter()
        .partition(|job| matches!(job, Job::Lease { .. }));
    let mut invocation = script.prepare_invoke();
    invocation
        .arg(timing.ttl_ms)
        .arg(timing.bucket_ms)
        .arg(settlements.len())
        .arg(admissions.len())
        .arg(leases.len());
    let mut key_index: HashMap<&str, usize> = HashMap::new();
    for job in settlements.iter().chain(&leases).chain(&admissions) {
        for part in &job.call().parts {
            match part {
                Part::Key(key) => {
                    let next = key_index.len() + 1;
                    let index = *key_index.entry(key.as_str()).or_insert_with(|| {
                        invocation.key(key.as_str());
                        next
                    });
                    invocation.arg(index);
                }
                Part::NoKey => {
                    invocation.arg(0);
                }
                Part::Int(value) => {
                    invocation.arg(*value);
                }
                Part::Text(value) => {
                    invocation.arg(value.as_str());
                }
            }
        }
    }
    let result: redis::RedisResult<Vec<Value>> = invocation.invoke_async(&mut redis).await;
    match result {
        Ok(replies) => {
            let mut replies = replies.into_iter();
            for job in admissions {
                if let Job::Admit { reply, release, .. } = job {
                    let answer = match replies.next() {
                        Some(Value::Array(values)) => Ok(values),
                        other => Err(format!("admission script answered {other:?}")),
                    };
                    if let Err(Ok(values)) = reply.send(answer) {
                        release_orphan(&values, release, requeue);
                    }
                }
            }
            for job in leases {
                if let Job::Lease { reply, .. } = job {
                    let answer = match replies.next() {
                        Some(Value::Array(values)) => Ok(values),
                        other => Err(SettleError {
                            message: format!("lease script answered {other:?}"),
                            maybe_applied: true,
                        }),
                    };
                    let _ = reply.send(answer);
                }
            }
            for job in settlements {
                if let Job::Settle { done, .. } = job {
                    let _ = done.send(Ok(()));
                }
            }
            Vec::new()
        }
        Err(e) => failed(settlements.into_iter().chain(leases).chain(admissions), &e),
    }
}

/// Answers the jobs of a call that failed, but for those that may be sent again, which it
/// returns.
fn failed(jobs: impl Iterator<Item = Job>, error: &redis::RedisError) -> Vec<Job> {
    let delivery = delivery(error);
    let message = error.to_string();
    let mut again = Vec::new();
    for job in jobs {
        if send_again(&job, delivery) {
            again.push(job);
            continue;
        }
        match job {
            Job::Admit { reply, .. } => {
                let _ = reply.send(Err(message.clone()));
            }
            Job::Settle { done, .. } => {
                let _ = done.send(Err(SettleError {
                    message: message.clone(),
                    maybe_applied: delivery == Delivery::MayHaveRun,
                }));
            }
            Job::Lease { reply, .. } => {
                let _ = reply.send(Err(SettleError {
                    message: message.clone(),
                    maybe_applied: delivery == Delivery::MayHaveRun,
                }));
            }
        }
    }
    if !again.is_empty() {
        tracing::debug!(
            error = message,
            jobs = again.len(),
            "governance call did not run; sending it again"
        );
    }
    again
}

/// Whether a job whose call failed with `delivery` goes out again. Never when the call may
/// have run. A settlement goes again whenever it surely did not (its request is over, and
/// what it counts must not be lost to a failover). An admission goes again only after a
/// redirection, while its request still waits: a Redis that refuses connections answers its
/// request at once with the failure policy, as it always has.
fn send_again(job: &Job, delivery: Delivery) -> bool {
    let (fits, since) = match job {
        Job::Settle { tries, .. } => (delivery != Delivery::MayHaveRun, tries.since),
        Job::Admit { reply, tries, .. } => (
            delivery == Delivery::Redirected && !reply.is_closed(),
            tries.since,
        ),
        // A renewal is waited for in the background: it goes again like a settlement, while
        // its renewer still waits.
        Job::Lease { reply, tries, .. } => (
            delivery != Delivery::MayHaveRun && !reply.is_closed(),
            tries.since,
        ),
    };
    fits && since.elapsed() < RESEND_WINDOW
}

/// An admission answered after its request stopped waiting: whatever it took goes back with
/// the next batch.
fn release_orphan(values: &[Value], release: Release, requeue: &mpsc::WeakUnboundedSender<Job>) {
    let Some(call) = release(values) else {
        return;
    };
    crate::metrics::observe_orphaned_admission();
    match requeue.upgrade() {
        Some(queue) => {
            let (done, _) = oneshot::channel();
            let _ = queue.send(Job::settle(call, done));
        }
        None => tracing::warn!(
            "an admission answered after its request left during shutdown; its reservation will expire"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::oneshot;
    use tokio::time::Instant;

    use super::{by_team, send_again};
    use crate::connect::redis::Delivery;
    use crate::governance::batch::{Call, Job, Part, Tries};
    use crate::ids::TeamId;

    fn job(team: TeamId, tag: i64, settlement: bool) -> Job {
        let mut call = Call::new(team);
        call.int(tag);
        if settlement {
            Job::settle(call, oneshot::channel().0)
        } else {
            Job::admit(call, oneshot::channel().0, Box::new(|_| None))
        }
    }

    fn tags(jobs: &[Job]) -> Vec<i64> {
        jobs.iter()
            .map(|job| match job.call().parts.first() {
                Some(Part::Int(tag)) => *tag,
                _ => -1,
            })
            .collect()
    }

    #[test]
    fn a_script_call_only_carries_one_teams_requests_in_their_order() {
        let (a, b) = (TeamId(uuid::Uuid::now_v7()), TeamId(uuid::Uuid::now_v7()));
        let settlements = vec![job(b, 1, true), job(a, 2, true), job(b, 3, true)];
        let admissions = vec![job(a, 4, false), job(b, 5, false), job(a, 6, false)];
        let groups = by_team(settlements, admissions);
        assert_eq!(groups.len(), 2);
        let (b_settled, b_admitted) = &groups[0];
        assert_eq!((tags(b_settled), tags(b_admitted)), (vec![1, 3], vec![5]));
        let (a_settled, a_admitted) = &groups[1];
        assert_eq!((tags(a_settled), tags(a_admitted)), (vec![2], vec![4, 6]));
        for (settled, admitted) in &groups {
            let team = settled.iter().chain(admitted).map(|job| job.call().team);
            assert_eq!(team.clone().min(), team.max(), "one team per script call");
        }
    }

    #[tokio::test]
    async fn a_call_goes_again_only_if_it_surely_did_not_run_and_someone_needs_it() {
        let team = TeamId(uuid::Uuid::now_v7());
        let settlement = job(team, 1, true);
        assert!(send_again(&settlement, Delivery::NotSent));
        assert!(send_again(&settlement, Delivery::Redirected));
        assert!(!send_again(&settlement, Delivery::MayHaveRun));

        let (reply, answer) = oneshot::channel();
        let admission = Job::admit(Call::new(team), reply, Box::new(|_| None));
        assert!(send_again(&admission, Delivery::Redirected));
        // Redis refusing connections answers at once (the failure policy), as it always has.
        assert!(!send_again(&admission, Delivery::NotSent));
        assert!(!send_again(&admission, Delivery::MayHaveRun));
        drop(answer);
        assert!(
            !send_again(&admission, Delivery::Redirected),
            "nobody waits for it"
        );

        let mut old = job(team, 2, true);
        *old.tries() = Tries {
            failed: 3,
            since: Instant::now()
                .checked_sub(Duration::from_secs(31))
                .unwrap_or_else(Instant::now),
        };
        assert!(
            !send_again(&old, Delivery::NotSent),
            "past the resend window"
        );
    }
}
