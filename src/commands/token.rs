//! `cronraft token create|list|revoke` and `cronraft audit`: API tokens and who changed what.
//!
//! Both need an `admin` token (`--token`, `CRONRAFT_TOKEN` or `--token-file`; on the first node
//! the bootstrap token is in `<data-dir>/admin.token`). `create` prints the new token's secret
//! once: the cluster keeps only its hash.

use cronraft_api::types::{TokenInput, TokenView};
use cronraft_raft::model::Role;

use super::{client, print_json, print_table, CommandError};
use crate::cli::{AuditArgs, TokenCommand};

fn row(t: &TokenView) -> Vec<String> {
    let list = |v: &[String]| if v.is_empty() { "-".to_string() } else { v.join(",") };
    vec![
        t.name.clone(),
        t.role.as_str().to_string(),
        list(&t.groups),
        list(&t.prefixes),
        t.created_at.to_rfc3339(),
        t.created_by.clone(),
    ]
}

const HEADERS: [&str; 6] = ["name", "role", "groups", "prefixes", "created at", "created by"];

pub async fn run(cmd: TokenCommand) -> Result<(), CommandError> {
    match cmd {
        TokenCommand::Create { name, role, groups, prefixes, target } => {
            let role = Role::parse(&role).ok_or_else(|| {
                CommandError::Argument(format!("role {role:?}: expected read, operate, executor or admin"))
            })?;
            let created = client(&target)?.create_token(&TokenInput { name, role, groups, prefixes }).await?;
            if target.json {
                print_json(&created);
            } else {
                // The secret alone on stdout, so `cronraft token create ... > file` keeps just it.
                println!("{}", created.token);
                eprintln!(
                    "token {:?} ({}) created; this is the only time its secret is shown",
                    created.view.name,
                    created.view.role.as_str()
                );
            }
        }
        TokenCommand::List { target } => {
            let tokens = client(&target)?.list_tokens().await?;
            if target.json {
                print_json(&tokens);
            } else {
                print_table(&HEADERS, tokens.iter().map(row).collect());
            }
        }
        TokenCommand::Revoke { name, target } => {
            let t = client(&target)?.revoke_token(&name).await?;
            if target.json {
                print_json(&t);
            } else {
                println!("revoked token {:?} ({})", t.name, t.role.as_str());
            }
        }
    }
    Ok(())
}

pub async fn audit(args: AuditArgs) -> Result<(), CommandError> {
    let page = client(&args.target)?.audit(args.paging.page, args.paging.page_size).await?;
    if args.target.json {
        print_json(&page);
        return Ok(());
    }
    let rows = page
        .items
        .iter()
        .map(|e| {
            vec![
                e.id.to_string(),
                e.at.to_rfc3339(),
                e.by.clone(),
                e.action.clone(),
                e.target.clone(),
                e.outcome.clone(),
            ]
        })
        .collect();
    print_table(&["id", "at", "by", "action", "target", "outcome"], rows);
    println!("({} of {} entries, newest first)", page.items.len(), page.total);
    Ok(())
}
