//! `cronraft backup`, `cronraft restore` and `cronraft recover`: the operator's side of
//! backups and of disaster recovery (docs/operating/recovery.md).
//!
//! `backup` is a client command: it streams `GET /api/v1/backup` from any node into
//! `FILE.partial`, checking it as it arrives, and renames it to `FILE` only once the whole
//! backup checks out, so a file named like a backup always is one. `restore` and `recover` work
//! on a stopped node's data directory, found through the node's own configuration (the same
//! file, variables and flags as `serve`), so they act on exactly the node that will then start.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use cronraft_raft::address::HostPort;
use cronraft_raft::store::backup::BackupSummary;
use cronraft_raft::store::offline;
use cronraft_raft::store::paced::PacedFile;
use cronraft_raft::NodeInfo;

use super::{client, print_json, CommandError};
use crate::cli::{BackupArgs, RecoverArgs, RestoreArgs};
use crate::config::Config;

pub async fn backup(args: BackupArgs) -> Result<(), CommandError> {
    let client = client(&args.target)?;
    let partial = partial_path(&args.out);
    let file = PacedFile::new(create_private(&partial)?);
    let result = client.backup(file).await;
    let (summary, file) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.into());
        }
    };
    file.finish().map_err(|e| io_error(&partial, e))?;
    std::fs::rename(&partial, &args.out).map_err(|e| io_error(&args.out, e))?;
    if args.target.json {
        print_json(&summary);
    } else {
        print_summary(&args.out, &summary);
    }
    Ok(())
}

pub async fn restore(args: RestoreArgs) -> Result<(), CommandError> {
    crate::fsperm::restrict_umask();
    let config = args.node.to_config(std::env::vars())?;
    let input = File::open(&args.from).map_err(|e| io_error(&args.from, e))?;
    let info = node_info(&config);
    let input = std::io::BufReader::with_capacity(1 << 20, input);
    let summary = offline::restore(input, &config.data_dir, config.node_id, info).await?;
    if args.json {
        print_json(&summary);
        return Ok(());
    }
    let b = &summary.backup;
    println!(
        "restored {} pairs at log index {} (term {}) into {} as node {}",
        b.trailer.pairs,
        b.header.applied_index,
        b.header.applied_term,
        config.data_dir.display(),
        summary.node_id
    );
    println!("data digest {} (the backup's)", summary.data_digest);
    println!("new cluster id {}: the nodes of the backup's cluster cannot join this one", summary.cluster_id);
    println!("start it with `cronraft serve` and the same configuration; add the other nodes with --join");
    Ok(())
}

pub async fn recover(args: RecoverArgs) -> Result<(), CommandError> {
    if !args.force_new_cluster {
        return Err(CommandError::Argument(
            "recover changes the cluster's membership to this node alone: give --force-new-cluster to say the \
             other members are gone for good (docs/operating/recovery.md)"
                .into(),
        ));
    }
    let config = args.node.to_config(std::env::vars())?;
    let summary = offline::force_new_cluster(&config.data_dir, config.node_id).await?;
    if args.json {
        print_json(&summary);
        return Ok(());
    }
    println!(
        "node {} is now the only voter (was: {:?}); membership entry at log index {} in term {}; {} entries to apply",
        summary.node_id, summary.old_voters, summary.membership_index, summary.term, summary.unapplied_entries
    );
    println!("start it with `cronraft serve`, then add new nodes (new ids, empty data) with --join");
    Ok(())
}

/// The addresses the restored node records for itself: what `serve` will advertise, as far as
/// it is known before binding (a port 0 is corrected by the node once it leads).
fn node_info(config: &Config) -> NodeInfo {
    let pick = |advertised: &Option<String>, written: &str| {
        advertised.clone().unwrap_or_else(|| HostPort::parse(written).map_or(written.to_string(), |hp| hp.to_string()))
    };
    NodeInfo {
        http_addr: pick(&config.advertise_http_addr, &config.http_addr),
        raft_addr: pick(&config.advertise_raft_addr, &config.raft_addr),
    }
}

fn print_summary(path: &Path, s: &BackupSummary) {
    println!(
        "backup of log index {} (term {}) from node {}: {} pairs, {} bytes, written to {}",
        s.header.applied_index,
        s.header.applied_term,
        s.header.node_id,
        s.trailer.pairs,
        s.bytes,
        path.display()
    );
    println!("checksum {}", s.checksum);
    println!("state digest {} (the source's /cluster/digest at that index)", s.trailer.state_digest);
    println!("data digest {}", s.trailer.data_digest);
}

/// `FILE.partial`, beside `FILE`.
fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    out.with_file_name(name)
}

/// A new file only its owner may read: a backup holds every token's hash and every task's
/// parameters.
fn create_private(path: &Path) -> Result<File, CommandError> {
    OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(|e| io_error(path, e))
}

fn io_error(path: &Path, e: std::io::Error) -> CommandError {
    CommandError::Io(format!("{}: {e}", path.display()))
}
