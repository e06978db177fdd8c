//! The dry run: what an update would do, with the read-only checks (checksum, config diffs)
//! done for real.

use super::configs::diff_configs;
use super::files::{previous_path, staged_path};
use super::releases::{current_link, release_dir};
use super::stage::Release;
use super::{Outcome, Run, UpdateReport};
use kyb_core::Status;
use kyb_core::digest::sha256_file;

/// The dry run's plan: what would be done, with the read-only checks done for real.
pub(super) async fn plan(
    mut run: Run<'_>,
    release: &Release,
    expected: Option<(String, String)>,
) -> UpdateReport {
    let cfg = run.cfg;
    let sha = match sha256_file(&release.binary) {
        Ok(s) => s,
        Err(e) => return run.not_changed("release", format!("{}: {e}", release.binary.display())),
    };
    match &expected {
        Some((want, from)) if *want != sha => {
            return run.not_changed(
                "checksum",
                format!("sha256 of {} is {sha}, {from} says {want}", release.binary.display()),
            );
        }
        Some((_, from)) => run.step("checksum", Status::Ok, format!("sha256 {sha} matches {from}")),
        None => {
            run.step("checksum", Status::Warn, format!("sha256 {sha}; no checksum given to compare with"))
        }
    }
    let staged = match &cfg.releases_dir {
        Some(_) => release_dir(cfg, &format!(".{}.kyb-staged", run.req.version)).unwrap_or_default(),
        None => staged_path(&cfg.binary, "kyb-staged"),
    };
    run.step(
        "stage",
        Status::Ok,
        format!("would copy {} to {} and fsync it", release.binary.display(), staged.display()),
    );
    if !cfg.check_command.is_empty() {
        run.step(
            "validate",
            Status::Ok,
            format!("would run `{}` (within {} ms)", cfg.check_command.join(" "), cfg.check_timeout_ms.get()),
        );
    }
    if let Err(why) = diff_configs(&mut run, release) {
        return run.not_changed("configs", why.to_string());
    }
    let db =
        cfg.database.as_ref().map_or(String::new(), |d| format!(" and dump database {}", d.postgres.name()));
    run.step(
        "backup",
        Status::Ok,
        format!(
            "would copy {} and {} config(s) under {}{db}",
            cfg.binary.display(),
            cfg.configs.len(),
            cfg.state_dir.display()
        ),
    );
    let swap = match current_link(cfg) {
        Ok(Some((link, old))) => format!(
            "would move the staged release to {}, stop {}, point {} at it (previous release {}), start",
            release_dir(cfg, &run.req.version).unwrap_or_default().display(),
            cfg.service.describe(),
            link.display(),
            old.display()
        ),
        _ => format!(
            "would stop {}, keep {} as {}, rename the staged binary over it, start",
            cfg.service.describe(),
            cfg.binary.display(),
            previous_path(&cfg.binary).display()
        ),
    };
    run.step("swap", Status::Ok, swap);
    let g = &cfg.health;
    run.step(
        "health-gate",
        Status::Ok,
        format!(
            "would need {} consecutive successes of {} within {} ms, else roll back",
            g.successes, g.url, g.deadline_ms
        ),
    );
    run.end(Outcome::Planned, vec!["dry run: nothing was changed".into()])
}
