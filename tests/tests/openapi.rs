//! The local API's OpenAPI document, as the running daemon serves it, passes the standard
//! validator (openapi-spec-validator, installed by scripts/setup into .tools/venv): every
//! path parameter declared, every reference resolved — generated clients depend on it.

use edge_tests::support::Daemon;
use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_openapi_document_passes_the_validator() {
    let validator = std::env::var_os("OPENAPI_SPEC_VALIDATOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv/bin/openapi-spec-validator"));
    assert!(validator.exists(), "{} is missing: run scripts/setup", validator.display());
    let dir = tempfile::tempdir().expect("tmp");
    let d = Daemon::start(&dir.path().join("edged"), 50);
    let doc = d.http().get(format!("{}/v1/openapi.json", d.url)).send().expect("get").text().expect("text");
    let v: serde_json::Value = serde_json::from_str(&doc).expect("the document is JSON");
    assert!(v["paths"]["/v1/payments/{id}/settle"].is_object(), "the new endpoints are in it");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &doc).expect("write");
    let out =
        Command::new(&validator).args(["--validation-errors", "all"]).arg(&file).output().expect("run the validator");
    assert!(
        out.status.success(),
        "openapi-spec-validator refuses the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
