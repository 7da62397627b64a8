//! Faults under a steady mixed load (starts, form creation by a real `ramp worker`,
//! submits, inbox streams), each followed by the checker: nothing a client was
//! told is lost, nothing is done twice, every stream sees every change once, in
//! order. Each test prints the checker's counts.
//!
//! The engine is the run's shared one: killing it would break every other test,
//! and a second engine of the test's own costs a JVM start on two shared cores. So
//! "the engine down" and "the engine slow" are an HTTP fault proxy in front of it
//! (`http_fault.rs`): down, every call answers 503 as a proxy in front of a stopped
//! engine would; slow, every call reaches the engine and its answer comes back past
//! ramp's timeout. Everything else is real: `ramp serve` and `ramp worker` are
//! processes that are killed (SIGKILL), frozen (SIGSTOP) and restarted, and
//! PostgreSQL is a cluster of the test's own that is stopped and started.

use std::time::Duration;

use crate::engine::engine_url;
use crate::helpers::fresh_database;
use crate::http_fault::{Fault, HttpFaultProxy};
use crate::load::{
    Cluster, Load, Replica, WorkerProcess, checker, deploy_looping_model, replica_env,
};

/// Clients cycling at once in each fault test.
const CLIENTS: usize = 6;

#[tokio::test]
async fn the_engine_down_and_then_slow_for_30_s_each_loses_and_duplicates_nothing() {
    let key = deploy_looping_model().await;
    let database = fresh_database().await;
    let proxy = HttpFaultProxy::start(&engine_url(), Fault::None).await;
    let replica = Replica::start(replica_env(&database, &proxy.url(), &key)).await;
    let _worker = WorkerProcess::start(replica.addr, &proxy.url(), &key);
    let load = Load::start(&[replica.addr], &key, CLIENTS);
    load.progress(CLIENTS, Duration::from_secs(60)).await;

    proxy.set(Fault::Down);
    load.run_for(Duration::from_secs(30)).await;
    proxy.set(Fault::None);
    load.progress(CLIENTS, Duration::from_secs(90)).await;

    // Every call reaches the engine and answers after ramp's timeout (2 s).
    proxy.set(Fault::Slow(Duration::from_millis(2_500)));
    load.run_for(Duration::from_secs(30)).await;
    proxy.set(Fault::None);
    load.progress(CLIENTS, Duration::from_secs(90)).await;

    load.finish_and_check(&checker(&database, &key), "engine down 30 s, slow 30 s")
        .await;
}

#[tokio::test]
async fn postgres_restarted_under_load_loses_and_duplicates_nothing() {
    let cluster = Cluster::start().await;
    let database = cluster.database().await;
    let key = deploy_looping_model().await;
    // Two replicas: streams on one see the other's writes through LISTEN.
    let a = Replica::start(replica_env(&database, &engine_url(), &key)).await;
    let b = Replica::start(replica_env(&database, &engine_url(), &key)).await;
    let _worker = WorkerProcess::start(b.addr, &engine_url(), &key);
    let load = Load::start(&[a.addr, b.addr], &key, CLIENTS);
    load.progress(CLIENTS, Duration::from_secs(60)).await;

    cluster.stop().await;
    load.run_for(Duration::from_secs(5)).await;
    cluster.start_again().await;
    // The pools recover: cycles complete again.
    load.progress(2 * CLIENTS, Duration::from_secs(90)).await;

    for replica in [&a, &b] {
        let log = replica.log();
        assert!(
            log.contains("LISTEN connection lost; reconnecting"),
            "the LISTEN connection did not notice the restart:\n{log}"
        );
    }
    load.finish_and_check(&checker(&database, &key), "PostgreSQL restarted")
        .await;
}

#[tokio::test]
async fn ramp_serve_killed_mid_submit_and_restarted_loses_and_duplicates_nothing() {
    let key = deploy_looping_model().await;
    let database = fresh_database().await;
    let mut replica = Replica::start(replica_env(&database, &engine_url(), &key)).await;
    let _worker = WorkerProcess::start(replica.addr, &engine_url(), &key);
    let load = Load::start(&[replica.addr], &key, CLIENTS);
    for _ in 0..3 {
        load.progress(CLIENTS, Duration::from_secs(90)).await;
        // Clients submit all the time: wait for one more answer, kill at once.
        load.submissions(
            load.ledger.accepted_submissions() + 1,
            Duration::from_secs(60),
        )
        .await;
        replica.kill().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        replica.restart().await;
    }
    load.progress(CLIENTS, Duration::from_secs(90)).await;
    load.finish_and_check(&checker(&database, &key), "ramp serve SIGKILLed 3 times")
        .await;
}

#[tokio::test]
async fn a_worker_killed_mid_task_loses_and_duplicates_nothing() {
    let key = deploy_looping_model().await;
    let database = fresh_database().await;
    let replica = Replica::start(replica_env(&database, &engine_url(), &key)).await;
    // The first worker creates forms but never gets to complete its tasks: it dies
    // holding them.
    let stuck = HttpFaultProxy::start(&engine_url(), Fault::HangBefore("/complete")).await;
    let mut worker = WorkerProcess::start(replica.addr, &stuck.url(), &key);
    let load = Load::start(&[replica.addr], &key, CLIENTS);
    // Forms appear (and are submitted) while their send tasks are still held.
    load.submissions(CLIENTS, Duration::from_secs(60)).await;
    worker.kill().await;
    // Another worker gets the same tasks again when their locks expire.
    let _second = WorkerProcess::start(replica.addr, &engine_url(), &key);
    load.progress(2 * CLIENTS, Duration::from_secs(90)).await;
    worker.restart(); // the stuck one again, and killed again
    load.run_for(Duration::from_secs(3)).await;
    worker.kill().await;
    load.progress(CLIENTS, Duration::from_secs(90)).await;
    load.finish_and_check(&checker(&database, &key), "worker killed mid-task")
        .await;
}

#[tokio::test]
async fn a_replica_frozen_past_its_lease_loses_and_duplicates_nothing() {
    let key = deploy_looping_model().await;
    let database = fresh_database().await;
    let a = Replica::start(replica_env(&database, &engine_url(), &key)).await;
    let b = Replica::start(replica_env(&database, &engine_url(), &key)).await;
    let _worker = WorkerProcess::start(b.addr, &engine_url(), &key);
    let load = Load::start(&[a.addr, b.addr], &key, CLIENTS);
    load.progress(CLIENTS, Duration::from_secs(60)).await;

    // Past the delivery lease (4 s): what A claimed passes to B.
    a.freeze();
    load.run_for(Duration::from_secs(10)).await;
    a.thaw();
    load.progress(2 * CLIENTS, Duration::from_secs(90)).await;
    load.finish_and_check(&checker(&database, &key), "one of two replicas frozen 10 s")
        .await;
}
