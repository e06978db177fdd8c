//! kyb-backup against a real PostgreSQL: one test binary, one module per area.

mod create;
mod dry_run;
mod retention;
mod support;
mod verify;
