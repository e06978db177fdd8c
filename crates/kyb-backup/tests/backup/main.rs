//! kyb-backup against a real PostgreSQL: one test binary, one module per area.

mod create;
mod retention;
mod support;
mod verify;
