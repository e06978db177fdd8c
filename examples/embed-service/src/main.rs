//! `embed-service CONFIG`: serves `/maint/health` and `/maint/backup` on the config's `listen`
//! address until stopped.

use std::process::ExitCode;
use std::sync::Arc;

#[tokio::main]
async fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1).map(std::path::PathBuf::from) else {
        eprintln!("usage: embed-service CONFIG.toml");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("embed-service: cannot read {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let (listen, maint) = match embed_service::Maint::load(&text, &path) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("embed-service: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("embed-service: cannot listen on {listen}: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!("embed-service: serving /maint/health and /maint/backup on http://{listen}");
    embed_service::serve(listener, Arc::new(maint)).await;
    ExitCode::SUCCESS
}
