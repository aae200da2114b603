//! `powercut-fs BACKING MOUNT`: mounts the power-cut layer ([`edge_tests::powercut`]) of the
//! directory BACKING at MOUNT and prints `READY MOUNT`. Lines on stdin steer it:
//! `cut` drops every byte not fsynced (answers `ok FILES BYTES`), `stats` prints what it
//! did. It keeps serving when stdin closes; SIGTERM or SIGINT unmounts and exits 0.

use edge_tests::powercut::PowerCut;
use std::io::{BufRead, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter("warn").init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [backing, mount] = args.as_slice() else {
        eprintln!("usage: powercut-fs BACKING MOUNT");
        return ExitCode::from(2);
    };
    let fs = match PowerCut::new(std::path::Path::new(backing)) {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("powercut-fs: {backing}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut cfg = fuser::Config::default();
    cfg.mount_options =
        vec![fuser::MountOption::FSName("powercut".into()), fuser::MountOption::Subtype("powercut".into())];
    let session = match fuser::spawn_mount(fs.clone(), mount, &cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("powercut-fs: mounting at {mount}: {e}");
            return ExitCode::from(2);
        }
    };
    println!("READY {mount}");
    let _ = std::io::stdout().flush();
    let steer = fs.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            match line.trim() {
                "cut" => {
                    let (files, bytes) = steer.cut();
                    println!("ok {files} {bytes}");
                }
                "stats" => println!("{:?}", steer.stats()),
                "" => continue,
                other => println!("? {other:?}: cut | stats"),
            }
            let _ = std::io::stdout().flush();
        }
    });
    let rt = match tokio::runtime::Builder::new_current_thread().enable_io().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("powercut-fs: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! {
                    _ = t.recv() => {}
                    _ = i.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
    });
    drop(session);
    ExitCode::SUCCESS
}
