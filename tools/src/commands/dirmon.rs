//! `booster dirmon add|list|pause|resume|remove` on the local data
//! directory. The entries are the runtime's; the watcher that takes files
//! runs in `serve` and `work` (`--dirmon-allow`), never here.

use booster_runtime::DirmonView;

use super::{with_runtime, Ctx};
use crate::cli::DirmonCommand;
use crate::dirmon::split_add_words;
use crate::{exit, report};

pub async fn dirmon(ctx: &Ctx, command: DirmonCommand) -> anyhow::Result<i32> {
    let spec = match &command {
        DirmonCommand::Add { words } => Some(split_add_words(words)?.spec()),
        _ => None,
    };
    let runtime = ctx.open(None, false, spec.is_none()).await?;
    let rt = runtime.clone();
    let removing = matches!(command, DirmonCommand::Remove { .. });
    let (added, entries) = with_runtime(runtime, async move {
        let mut added = None;
        match command {
            DirmonCommand::Add { .. } => {
                let spec = spec.expect("parsed above");
                crate::dirmon::check_entry(&rt, &spec)
                    .map_err(|e| exit::usage(format!("{e:#}")))?;
                added = Some(rt.add_dirmon(spec).await?);
            }
            DirmonCommand::List => {}
            DirmonCommand::Pause { id } => rt.pause_dirmon(id).await?,
            DirmonCommand::Resume { id } => rt.resume_dirmon(id).await?,
            DirmonCommand::Remove { id } => {
                if let Some(view) = rt.dirmons().into_iter().find(|d| d.id == id) {
                    crate::dirmon::check_removable(&view).map_err(anyhow::Error::msg)?;
                }
                rt.remove_dirmon(id).await?;
                ctx.say(format!("dirmon {id} removed"));
            }
        }
        Ok((added, rt.dirmons()))
    })
    .await?;
    if let Some(id) = added {
        print_added_dirmon(
            ctx.json,
            ctx.quiet,
            entries.iter().find(|e| e.id == id),
            "files are taken by `booster work --dirmon-allow DIR` or `booster serve --dirmon-allow DIR`, DIR holding both directories",
        );
        return Ok(exit::OK);
    }
    if !removing || ctx.json {
        print_dirmons(ctx.json, &entries);
    }
    Ok(exit::OK)
}

/// Prints the entry `dirmon add` added, here or on a server.
pub fn print_added_dirmon(json: bool, quiet: bool, view: Option<&DirmonView>, then: &str) {
    let Some(view) = view else {
        return;
    };
    if json {
        report::print_json(&serde_json::json!(view));
    } else if quiet {
        outln!("{}", view.id);
    } else {
        outln!("{}", report::dirmon_line(view));
        outln!("{then}");
    }
}

/// Prints entries as `dirmon list` does.
pub fn print_dirmons(json: bool, entries: &[DirmonView]) {
    if json {
        report::print_json(&serde_json::json!(entries));
    } else if entries.is_empty() {
        outln!("no dirmon entries; `booster dirmon add --pattern 'DIR/*.csv' --archive DONE --kind copy` adds one");
    } else {
        for e in entries {
            outln!("{}", report::dirmon_line(e));
        }
    }
}
