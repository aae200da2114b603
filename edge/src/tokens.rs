//! Role tokens: one bearer token per role, kept in a 0600 JSON file (`tokens.json`), made
//! once with the OS's random source and kept across restarts. Tokens are compared in
//! constant time and never logged.

use edge_api::TokensFile;
use std::io::Write;
use std::path::Path;

/// A role of the local API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Cashier,
    Manager,
    Tech,
    Kiosk,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Cashier, Role::Manager, Role::Tech, Role::Kiosk];

    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Cashier => "cashier",
            Role::Manager => "manager",
            Role::Tech => "tech",
            Role::Kiosk => "kiosk",
        }
    }
}

/// The tokens in force.
#[derive(Clone)]
pub struct Tokens(TokensFile);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(<redacted>)")
    }
}

fn random_token() -> std::io::Result<String> {
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).map_err(|e| std::io::Error::other(format!("no OS randomness: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Tokens {
    /// Loads the tokens file, or makes one (0600) if there is none.
    pub fn load_or_create(path: &Path) -> Result<Tokens, String> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let t: TokensFile = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("tokens file {} is not valid: {e}", path.display()))?;
                for (role, tok) in
                    [("cashier", &t.cashier), ("manager", &t.manager), ("tech", &t.tech), ("kiosk", &t.kiosk)]
                {
                    if tok.len() < 16 {
                        return Err(format!(
                            "tokens file {}: the {role} token is shorter than 16 characters",
                            path.display()
                        ));
                    }
                }
                Ok(Tokens(t))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let make = || random_token().map_err(|e| e.to_string());
                let t = TokensFile { cashier: make()?, manager: make()?, tech: make()?, kiosk: make()? };
                write_private(path, &serde_json::to_vec_pretty(&t).map_err(|e| e.to_string())?)
                    .map_err(|e| format!("cannot write tokens file {}: {e}", path.display()))?;
                Ok(Tokens(t))
            }
            Err(e) => Err(format!("cannot read tokens file {}: {e}", path.display())),
        }
    }

    /// The role a bearer token belongs to.
    pub fn role_of(&self, token: &str) -> Option<Role> {
        let t = &self.0;
        let mut found = None;
        for (role, tok) in
            [(Role::Cashier, &t.cashier), (Role::Manager, &t.manager), (Role::Tech, &t.tech), (Role::Kiosk, &t.kiosk)]
        {
            if ct_eq(tok.as_bytes(), token.as_bytes()) {
                found = Some(role);
            }
        }
        found
    }

    /// The token of a role (handed out at a PIN login).
    pub fn token_of(&self, role: Role) -> &str {
        let t = &self.0;
        match role {
            Role::Cashier => &t.cashier,
            Role::Manager => &t.manager,
            Role::Tech => &t.tech,
            Role::Kiosk => &t.kiosk,
        }
    }

    pub fn file(&self) -> &TokensFile {
        &self.0
    }
}

/// Writes a file readable by its owner only, durably (write to a temp name, fsync, rename).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Writes a file durably (temp name, fsync, rename), world-readable.
pub fn write_public(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_made_once_private_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("tokens.json");
        let a = Tokens::load_or_create(&p).expect("create");
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = Tokens::load_or_create(&p).expect("load");
        assert_eq!(a.file().tech, b.file().tech);
        assert_eq!(b.role_of(&a.file().manager), Some(Role::Manager));
        assert_eq!(b.role_of("nope"), None);
        assert_ne!(a.file().cashier, a.file().kiosk);
    }

    #[test]
    fn a_broken_tokens_file_is_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("tokens.json");
        std::fs::write(&p, "{\"cashier\": 1}").expect("write");
        let e = Tokens::load_or_create(&p).expect_err("broken");
        assert!(e.contains("tokens.json"), "{e}");
    }
}
