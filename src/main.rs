//! The `cronraft` binary: parse the command line, then hand over to the library.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use cronraft::agent::Agent;
use cronraft::cli::{AgentArgs, CertsCommand, Cli, Command, ConfigCommand, ServeArgs};
use cronraft::Node;

/// Runs the command; a failure is one line on stderr (`error: ` and the error's causes joined
/// with `: `) and exit code 1 — never `anyhow`'s multi-line report, which adds a backtrace when
/// `RUST_BACKTRACE` is set.
fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, joined with `: `; a cause whose text its parent already shows
/// (`#[error("…: {0}")]`) is not repeated, and line breaks become spaces.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or_else(|| Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(args).await,
        Command::Cluster(cmd) => Ok(cronraft::commands::cluster(cmd).await?),
        Command::Task(cmd) => Ok(cronraft::commands::task(cmd).await?),
        Command::Agent(args) => agent(args).await,
        Command::Executor(cmd) => Ok(cronraft::commands::executor::run(cmd).await?),
        Command::Execution(cmd) => Ok(cronraft::commands::execution::run(cmd).await?),
        Command::Token(cmd) => Ok(cronraft::commands::token::run(cmd).await?),
        Command::Audit(args) => Ok(cronraft::commands::token::audit(args).await?),
        Command::Notify(cmd) => Ok(cronraft::commands::notify::run(cmd).await?),
        Command::Backup(args) => Ok(cronraft::commands::backup::backup(args).await?),
        Command::Restore(args) => Ok(cronraft::commands::backup::restore(args).await?),
        Command::Recover(args) => Ok(cronraft::commands::backup::recover(args).await?),
        Command::Certs(CertsCommand::Init { hosts, out, force, days }) => {
            let request = cronraft::tls::init::InitRequest { hosts, out, force, days };
            print!("{}", cronraft::tls::init::run(&request)?);
            Ok(())
        }
        Command::Config(ConfigCommand::Check(args)) => check_config(&args),
        Command::Config(ConfigCommand::Table) => {
            print!("{}", cronraft::config::keys::markdown_table());
            Ok(())
        }
    }
}

/// `cronraft config check`: the effective configuration on stdout, every problem on stderr
/// (`problem: ...`), exit 1 if there is one.
fn check_config(args: &ServeArgs) -> anyhow::Result<()> {
    let (config, refused) = args.load(std::env::vars()).context("configuration")?;
    let mut problems: Vec<String> = refused.iter().map(ToString::to_string).collect();
    problems.extend(cronraft::config::check::problems(&config));
    print!("{}", cronraft::config::check::render(&config));
    for p in &problems {
        eprintln!("problem: {p}");
    }
    match problems.len() {
        0 => {
            eprintln!("configuration ok");
            Ok(())
        }
        n => anyhow::bail!("{n} problem(s) in the configuration"),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // The configuration first: it says how to log. Its errors are printed by `main`.
    let config = args.to_config(std::env::vars()).context("configuration")?;
    cronraft::logging::init(config.log_format);
    // Before anything is created: the data files are private (see `cronraft::fsperm`).
    cronraft::fsperm::restrict_umask();
    absorb_sighup();
    let node = Node::start(config).await.context("starting the node")?;
    // One machine-readable line: tests and the benchmark read the real ports from it (port 0).
    println!("cronraft node {} listening http={} raft={}", node.node_id, node.http_addr, node.raft_addr);
    wait_for_signal().await;
    tracing::info!("shutting down");
    node.shutdown().await;
    Ok(())
}

async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    cronraft::logging::init(args.log_format);
    // Handlers first: a script may send SIGTERM as soon as it has read the `listening` line.
    let stop = shutdown_signal();
    absorb_sighup();
    let config = args.to_config(std::env::vars()).context("configuration")?;
    // SIGHUP or a change of the files reloads the agent's certificate, as a node's.
    let (reload_stop, reload_signal) = tokio::sync::watch::channel(false);
    let reloader = config.tls.spawn_reloader(reload_signal);
    let agent = Agent::start(config).await.context("starting the agent")?;
    // One machine-readable line, like `serve`'s: the real port when listening on port 0.
    println!("cronraft agent {} listening http={}", args.name, agent.addr());
    stop.await;
    tracing::info!("shutting down");
    agent.shutdown().await;
    let _ = reload_stop.send(true);
    if let Some(r) = reloader {
        let _ = r.await;
    }
    Ok(())
}

/// Installs the SIGINT and SIGTERM handlers now; the future resolves on either signal.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }
}

/// SIGHUP reloads the TLS certificate (`cronraft::tls`, which listens for it too); without TLS it
/// does nothing, instead of ending the process as its default action would: `systemctl reload`
/// must never stop a node.
fn absorb_sighup() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    tracing::debug!("SIGHUP received");
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot handle SIGHUP"),
    }
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// glibc's malloc took about a third of the leader's and the agent's CPU under dispatch load
/// (large-chunk paths: `_int_malloc`, `unlink_chunk`, `malloc_consolidate`); see
/// docs/performance.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
