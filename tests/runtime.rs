//! A policy is a value: stacks built from clones of one share no state. A
//! runtime holds the state, and stacks share it only when handed it.

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_rebound::{ErrorKind, Policy, ResilienceLayer, Runtime};
use tower_rebound_testkit::{Scripted, Step};

/// Two retries' worth of budget, no breaker, no wait between attempts.
fn policy() -> Policy {
    Policy::from_toml_str(
        "[classify]\nretryable = [500]\n[retry]\nmax_attempts = 3\n\
         [retry.backoff]\nkind = \"constant\"\ndelay = \"1ms\"\njitter = \"none\"\n\
         [retry.budget]\ncapacity = 2\nmin_reserve = 2\n[circuit_breaker]\nenabled = false\n",
    )
    .unwrap()
}

fn get() -> Request<Full<Bytes>> {
    Request::get("http://api.example/devices")
        .body(Full::default())
        .unwrap()
}

/// Spends a stack's budget on one failing call, then tells how the next call
/// through `other` ends.
async fn after_spending(spender: ResilienceLayer, other: ResilienceLayer) -> (u32, ErrorKind) {
    let script = Scripted::new([Step::status(500)]);
    let error = spender
        .layer(script.clone())
        .oneshot(get())
        .await
        .unwrap_err();
    assert_eq!(error.attempts(), 3, "two retries spend the budget");
    let error = other.layer(script).oneshot(get()).await.unwrap_err();
    (error.attempts(), error.kind())
}

#[tokio::test(start_paused = true)]
async fn stacks_of_one_policys_clones_share_no_budget() {
    let policy = policy();
    let a = ResilienceLayer::new(policy.clone());
    let b = ResilienceLayer::new(policy);
    assert!(!std::sync::Arc::ptr_eq(
        a.runtime().budget(),
        b.runtime().budget()
    ));
    let (attempts, kind) = after_spending(a, b).await;
    assert_eq!((attempts, kind), (3, ErrorKind::RetriesExhausted));
}

#[tokio::test(start_paused = true)]
async fn stacks_on_one_runtime_share_its_budget() {
    let policy = policy();
    let runtime = Runtime::new(&policy);
    let a = ResilienceLayer::with_runtime(policy.clone(), &runtime);
    let b = ResilienceLayer::with_runtime(policy, &runtime);
    let (attempts, kind) = after_spending(a, b).await;
    assert_eq!((attempts, kind), (1, ErrorKind::BudgetExhausted));
    assert_eq!(runtime.budget().granted(), 2);
}
