//! `confidant`: serve, demo, rotate-keys, rotate-master-key.

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: a request allocates and frees dozens of small objects
/// (JSON values, headers, strings), and on authorize glibc's malloc/free were ~10 % of the
/// server's CPU samples (perf). Measured in docs/PERFORMANCE.md.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use confidant::config::{Config, ServeArgs};

#[derive(Parser)]
#[command(
    name = "confidant",
    version,
    about = "Confidant: a self-hosted secure messenger for verified customers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Run the server with a ready demo site, messenger, agent and portal.
    Demo(ServeArgs),
    /// Start signing access tokens with a new key (old keys stay published until their tokens expire).
    RotateKeys(ServeArgs),
    /// Wrap the data keys under a new master key (see docs/OPERATING.md for the steps).
    RotateMasterKey(RotateMasterKeyArgs),
}

#[derive(clap::Args)]
struct RotateMasterKeyArgs {
    #[command(flatten)]
    serve: ServeArgs,
    /// The new master key file (generated if it does not exist).
    #[arg(long)]
    new_master_key_file: std::path::PathBuf,
    /// Also drop the wraps under every other master key (once every process runs with the new one).
    #[arg(long)]
    retire_old: bool,
}

fn fail(msg: &str) -> ! {
    eprintln!("confidant: {msg}");
    std::process::exit(2);
}

fn main() {
    // Everything the server creates (the data directory, the database and SQLite's -wal and
    // -shm files, key files) is for its own user only (CONTRACT §2 Files).
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            e.exit()
        }
        Err(e) => {
            let text = e.to_string();
            fail(
                text.lines()
                    .next()
                    .unwrap_or("bad arguments")
                    .trim_start_matches("error: "),
            );
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_target(false)
        // Colour only on a terminal: escape codes in journald or a log file are noise, and
        // colouring every request span's fields cost ~10 % of a no-op request's CPU.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("cannot start: {e}")));
    let (args, demo) = match &cli.command {
        Command::Serve(a) => (a, false),
        Command::Demo(a) => (a, true),
        Command::RotateKeys(a) => {
            let config = Config::from_args(a).unwrap_or_else(|e| fail(&e));
            runtime.block_on(async {
                match confidant::app::rotate_keys(&config).await {
                    Ok(kid) => println!(
                        "new signing key {kid}; the old one stays published until its tokens expire"
                    ),
                    Err(e) => fail(&format!("{e:#}")),
                }
            });
            return;
        }
        Command::RotateMasterKey(a) => {
            let config = Config::from_args(&a.serve).unwrap_or_else(|e| fail(&e));
            runtime.block_on(async {
                match confidant::app::rotate_master_key(
                    &config,
                    &a.new_master_key_file,
                    a.retire_old,
                )
                .await
                {
                    Ok(line) => println!("{line}"),
                    Err(e) => fail(&format!("{e:#}")),
                }
            });
            return;
        }
    };
    let config = Config::from_args(args).unwrap_or_else(|e| fail(&e));
    let code = runtime.block_on(async move {
        let running = match confidant::start(config, demo).await {
            Ok(r) => r,
            Err(e) => fail(&format!("{e:#}")),
        };
        tracing::info!(addr = %running.addr, public_url = %running.app.config.public_url, "listening");
        shutdown_signal().await;
        tracing::info!("shutting down");
        match running.stop().await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("confidant: {e:#}");
                1
            }
        }
    });
    std::process::exit(code);
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
