//! The `cronraft` binary: parse the command line, then hand over to the library.

use anyhow::Context;
use clap::Parser;
use cronraft::cli::{Cli, Command, ServeArgs};
use cronraft::Node;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or_else(|| Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(args).await,
        Command::Cluster(cmd) => Ok(cronraft::commands::cluster(cmd).await?),
        Command::Task(cmd) => Ok(cronraft::commands::task(cmd).await?),
        Command::Executor(cmd) => Ok(cronraft::commands::executor::run(cmd).await?),
        Command::Execution(cmd) => Ok(cronraft::commands::execution::run(cmd).await?),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Logs go to stderr (stdout carries the one machine-readable `listening` line), with colours
    // only on a terminal.
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CRONRAFT_LOG").unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .init();
    let config = args.to_config(std::env::vars()).context("configuration")?;
    let node = Node::start(config).await.context("starting the node")?;
    // One machine-readable line: tests and the benchmark read the real ports from it (port 0).
    println!("cronraft node {} listening http={} raft={}", node.node_id, node.http_addr, node.raft_addr);
    wait_for_signal().await;
    tracing::info!("shutting down");
    node.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
