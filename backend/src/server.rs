//! The coordinator process, assembled: configuration checked, the data dir
//! claimed, the cluster secret loaded, the supervised nodes started, the
//! engine and the watchers spawned, and the HTTP server run until a signal.

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::App;
use crate::config::{Args, Config};
use crate::{engine, http, monitor, recording, transport};

/// Runs the coordinator until SIGTERM or Ctrl-C.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.fresh {
        wipe_data_dir(&args.data_dir)?;
    }
    let config = Config::from_args(args)?;
    if config.has_supervised_nodes() && !config.participant_bin.is_file() {
        anyhow::bail!(
            "the participant executable {} does not exist: build it with `cargo build -p participant` (same profile), or pass --participant-bin",
            config.participant_bin.display()
        );
    }
    // Fail fast if another coordinator owns this data dir.
    drop(
        shared::log::file::LogFile::open(&config.coordinator_dir, "coordinator.log")
            .context("cannot open the coordinator's log")?,
    );
    let listen = config.args.listen;
    let listener = TcpListener::bind(listen).await.with_context(|| {
        format!("cannot listen on {listen} (is another coordinator running? pick another with --listen, or port 0)")
    })?;
    let local = listener.local_addr()?;
    let (secret, created) =
        shared::auth::ClusterSecret::load_or_create(&config.secret_file, rand::random)
            .map_err(|e| anyhow::anyhow!("--secret-file: {e}"))?;
    if created {
        tracing::info!(
            secret_file = %config.secret_file.display(),
            "created a new cluster secret; give it to every remote participant (participant --secret-file)"
        );
    }
    let app = App::new(config, secret);
    if app.config.recording_bytes_max > 0 {
        let dir = app.config.coordinator_dir.join(recording::DIR_NAME);
        let recorder = recording::Recorder::open(&dir, app.config.recording_bytes_max)
            .with_context(|| format!("cannot open the event recording in {}", dir.display()))?;
        app.hub.attach_recorder(recorder);
    }
    app.supervisor.start_all().await?;

    // Query-only connections to the nodes, alive across engine crashes.
    let (observer_events, mut observer_rx) =
        tokio::sync::mpsc::channel(shared::limits::OBSERVER_EVENTS_QUEUED_MAX);
    let observer_auth = transport::LinkAuth {
        secret: app.secret.clone(),
        claim: shared::auth::Claim {
            role: shared::wire::PeerRole::Admin,
            cluster: String::new(),
            epoch: 0,
            legacy_history: false,
        },
        refusals: None,
    };
    let (observer, _observer_connections) = transport::Transport::start(
        &app.supervisor,
        app.links.clone(),
        observer_events,
        observer_auth,
    );
    tokio::spawn(async move { while observer_rx.recv().await.is_some() {} });
    let _ = app.observer.set(observer);

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let engine = tokio::spawn(engine::supervise(app.engine_context(), shutdown_rx.clone()));
    tokio::spawn(monitor::node_statuses(app.clone(), shutdown_rx.clone()));
    tokio::spawn(monitor::balances(app.clone(), shutdown_rx.clone()));
    tokio::spawn(monitor::recording_snapshots(
        app.clone(),
        shutdown_rx.clone(),
    ));
    tokio::spawn(http::indoubt::watch_heuristics(
        app.clone(),
        shutdown_rx.clone(),
    ));

    let nodes: Vec<String> = app
        .config
        .nodes
        .iter()
        .map(|n| {
            format!(
                "{} at {}",
                n.id,
                app.supervisor
                    .addr(&n.id)
                    .map(|a| a.to_string())
                    .unwrap_or_default()
            )
        })
        .collect();
    tracing::info!(nodes = %nodes.join(", "), demo = app.demo_mode(), "cluster running");
    println!("Dashboard and API: http://{local}/");
    if let Some(path) = &app.config.args.ready_file {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, local.to_string())
            .and_then(|_| std::fs::rename(&tmp, path))
            .with_context(|| format!("cannot write the ready file {}", path.display()))?;
    }

    let router = http::router(app.clone(), local);
    // Every response goes out at once: with Nagle's algorithm on, a response
    // written in two parts (a streamed body, a WebSocket frame after another)
    // waits for the client's delayed ACK, up to 40 ms.
    let listener = listener.tap_io(|stream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY on an HTTP connection: {e}");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the HTTP server failed")?;

    tracing::info!("shutting down: stopping the engine and the participants");
    let _ = shutdown_tx.send(true);
    let _ = engine.await;
    app.supervisor.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Removes what this program keeps in the data dir (and nothing else).
fn wipe_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name == "coordinator" || name.starts_with("node-") {
            std::fs::remove_dir_all(entry.path())
                .with_context(|| format!("cannot delete {} for --fresh", entry.path().display()))?;
        }
    }
    Ok(())
}
