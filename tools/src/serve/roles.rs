//! Token roles (DESIGN.md G13): what a caller may do, decided by the token
//! it presents.
//!
//! `--token-file` holds one token (an `admin`, as before roles existed) or
//! lines `ROLE TOKEN`:
//!
//! ```text
//! # role      token
//! admin       Zm9vYmFyYmF6cXV4cXV1eA
//! submitter   c3VibWl0dGVyLXRva2VuLTAx
//! read-only   cmVhZC1vbmx5LXRva2VuLTAx
//! ```
//!
//! A `worker` line there is refused: before the fleet, `worker` was the
//! role that submits and controls jobs (now `submitter`), and an old file
//! read with today's meaning would let those clients lease records and
//! commit output, and lock them out of the API. Worker tokens live in
//! `--worker-token-file` only.
//!
//! `--worker-token-file` and `--read-token-file` hold tokens of one role
//! each, one a line. [`TokenSource`] reads them all again on SIGHUP, so a
//! token is rotated without a restart.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::bail;
use parking_lot::RwLock;

/// A token shorter than this is refused as guessable.
pub const MIN_TOKEN_CHARS: usize = 16;

/// What a caller may do. Ordered by reach (`Admin` last, so `role <
/// Role::Admin` reads "not an admin"), but the API and the worker service
/// are apart: ask `may_read`, `may_change` and `may_work`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// `GET` and `HEAD` of the API only.
    ReadOnly,
    /// The worker service only (`booster.worker.v1.Worker`: hello, lease,
    /// heartbeat, commit): a worker host's token reads no job and changes
    /// nothing through the API.
    Worker,
    /// The API's reads, and submit, upload, change and control jobs that
    /// run no command (what `worker` meant before the fleet).
    Submitter,
    /// Everything: also `exec` jobs (allowed commands only), operator
    /// actions, and the worker service.
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::ReadOnly => "read-only",
            Role::Worker => "worker",
            Role::Submitter => "submitter",
            Role::Admin => "admin",
        }
    }

    fn parse(word: &str) -> Option<Role> {
        match word {
            "read-only" => Some(Role::ReadOnly),
            "worker" => Some(Role::Worker),
            "submitter" => Some(Role::Submitter),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// May read the API (lists, jobs, downloads, events, metrics).
    pub fn may_read(self) -> bool {
        self != Role::Worker
    }

    /// May change things through the API (anything but `GET`/`HEAD`).
    pub fn may_change(self) -> bool {
        matches!(self, Role::Submitter | Role::Admin)
    }

    /// May call the worker service: lease work, heartbeat and commit.
    pub fn may_work(self) -> bool {
        matches!(self, Role::Worker | Role::Admin)
    }
}

/// The tokens a server accepts, each with its role.
#[derive(Debug)]
pub struct Tokens {
    entries: Vec<(Role, String)>,
}

impl Tokens {
    /// Parses a token file's text; `path` is only for messages.
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Tokens> {
        let lines: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let mut entries = Vec::new();
        match lines.as_slice() {
            [(_, single)] if !single.contains(char::is_whitespace) => {
                entries.push((Role::Admin, check_token(single, path, 1)?));
            }
            _ => {
                for (n, line) in lines {
                    let mut words = line.split_whitespace();
                    let (Some(role), Some(token), None) =
                        (words.next(), words.next(), words.next())
                    else {
                        bail!(
                            "{}:{n}: expected `ROLE TOKEN` (ROLE is admin, submitter or \
                             read-only), \
                             or a file holding only one token",
                            path.display()
                        );
                    };
                    let Some(role) = Role::parse(role) else {
                        bail!(
                            "{}:{n}: unknown role {role:?}; use admin, submitter or read-only",
                            path.display()
                        );
                    };
                    if role == Role::Worker {
                        bail!(
                            "{}:{n}: a `worker` line is not taken here: `worker` was the role that \
                             submits and controls jobs, which is now `submitter` (write \
                             `submitter TOKEN`); a remote worker's token goes in the file of \
                             serve --worker-token-file",
                            path.display()
                        );
                    }
                    let token = check_token(token, path, n)?;
                    if entries.iter().any(|(_, t)| *t == token) {
                        bail!(
                            "{}:{n}: this token is listed twice; give each role its own",
                            path.display()
                        );
                    }
                    entries.push((role, token));
                }
            }
        }
        if entries.is_empty() {
            bail!(
                "the token file {} holds no token; make one with: head -c 32 /dev/urandom | base64 > {}",
                path.display(),
                path.display()
            );
        }
        Ok(Tokens { entries })
    }

    /// The role of `given`, comparing against every token in constant time.
    pub fn role_of(&self, given: &str) -> Option<Role> {
        let mut found = None;
        for (role, token) in &self.entries {
            if constant_time_eq(given.as_bytes(), token.as_bytes()) {
                found = Some(*role);
            }
        }
        found
    }
}

impl Tokens {
    /// Parses a `--worker-token-file` or `--read-token-file`: every line
    /// that is not blank or a `#` comment is one token of `role`. A file
    /// with none gives that role no token: emptying it (then SIGHUP) is
    /// how the last one is revoked.
    pub fn parse_role_file(text: &str, path: &Path, role: Role) -> anyhow::Result<Tokens> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            entries.push((role, check_token(line, path, i + 1)?));
        }
        Ok(Tokens { entries })
    }

    /// How many tokens of `role` there are.
    pub fn count(&self, role: Role) -> usize {
        self.entries.iter().filter(|(r, _)| *r == role).count()
    }

    /// `self` with `other`'s tokens added; a token in both is refused.
    fn merge(mut self, other: Tokens, path: &Path) -> anyhow::Result<Tokens> {
        for (role, token) in other.entries {
            if self.entries.iter().any(|(_, t)| *t == token) {
                bail!(
                    "{}: a token there is also in another token file; give each role its own",
                    path.display()
                );
            }
            self.entries.push((role, token));
        }
        Ok(self)
    }
}

/// The token files `serve` was given.
#[derive(Clone, Debug, Default)]
pub struct TokenFiles {
    /// `--token-file`: one admin token, or `ROLE TOKEN` lines.
    pub admin: Option<PathBuf>,
    /// `--worker-token-file`: worker tokens, one a line.
    pub worker: Option<PathBuf>,
    /// `--read-token-file`: read-only tokens, one a line.
    pub read: Option<PathBuf>,
}

impl TokenFiles {
    /// No token file: loopback only, every caller an admin.
    pub fn is_empty(&self) -> bool {
        self.admin.is_none() && self.worker.is_none() && self.read.is_none()
    }

    /// Reads and checks every file (each must be private, mode 0600).
    pub fn read(&self) -> anyhow::Result<Tokens> {
        let mut all = Tokens {
            entries: Vec::new(),
        };
        if let Some(path) = &self.admin {
            let text = crate::secret_file::read_private(path, "token file")?;
            all = all.merge(Tokens::parse(&text, path)?, path)?;
        }
        for (path, role) in [(&self.worker, Role::Worker), (&self.read, Role::ReadOnly)] {
            if let Some(path) = path {
                let text = crate::secret_file::read_private(path, "token file")?;
                all = all.merge(Tokens::parse_role_file(&text, path, role)?, path)?;
            }
        }
        Ok(all)
    }
}

/// The tokens in force, read again from their files on demand (SIGHUP):
/// a request sees the old set or the new one, never a mix.
pub struct TokenSource {
    files: TokenFiles,
    current: RwLock<Arc<Tokens>>,
    /// Reloads that failed and kept the tokens in force
    /// (`booster_token_reload_failures_total`).
    reload_failures: AtomicU64,
}

impl TokenSource {
    pub fn open(files: TokenFiles) -> anyhow::Result<TokenSource> {
        let tokens = files.read()?;
        Ok(TokenSource {
            files,
            current: RwLock::new(Arc::new(tokens)),
            reload_failures: AtomicU64::new(0),
        })
    }

    pub fn current(&self) -> Arc<Tokens> {
        self.current.read().clone()
    }

    /// Reads the files again. A file that became unreadable or invalid
    /// keeps the tokens in force (the error says why, and
    /// `reload_failures` counts it), so a typo in a rotation never locks
    /// every client out. A role file emptied of tokens is valid: that
    /// role has none from now on.
    pub fn reload(&self) -> anyhow::Result<()> {
        let tokens = self.files.read().inspect_err(|_| {
            self.reload_failures.fetch_add(1, Ordering::Relaxed);
        })?;
        *self.current.write() = Arc::new(tokens);
        Ok(())
    }

    /// Reloads that failed since start.
    pub fn reload_failures(&self) -> u64 {
        self.reload_failures.load(Ordering::Relaxed)
    }

    /// Notes for the operator on the role files that hold no token (no
    /// worker may join, nobody may read with a read-only token).
    pub fn empty_roles(&self) -> Vec<String> {
        let tokens = self.current();
        let files = [
            (
                &self.files.worker,
                Role::Worker,
                "no remote worker can join",
            ),
            (&self.files.read, Role::ReadOnly, "no read-only token works"),
        ];
        files
            .into_iter()
            .filter_map(|(path, role, means)| {
                let path = path.as_ref()?;
                (tokens.count(role) == 0).then(|| {
                    format!(
                        "the {} token file {} holds no token: {means}",
                        role.name(),
                        path.display()
                    )
                })
            })
            .collect()
    }
}

fn check_token(token: &str, path: &Path, line: usize) -> anyhow::Result<String> {
    if token.chars().count() < MIN_TOKEN_CHARS {
        bail!(
            "{}:{line}: a token must be one word of at least {MIN_TOKEN_CHARS} characters; \
             make one with: head -c 32 /dev/urandom | base64",
            path.display()
        );
    }
    Ok(token.to_string())
}

/// Compares without an early exit, so response time says nothing about how
/// much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "admin-token-0123456789";
    const W: &str = "worker-token-0123456789";
    const R: &str = "reader-token-0123456789";
    const S: &str = "submitter-token-0123456789";

    #[test]
    fn a_file_with_one_token_makes_it_admin() {
        let t = Tokens::parse(&format!("{A}\n"), Path::new("t")).unwrap();
        assert_eq!(t.role_of(A), Some(Role::Admin));
        assert_eq!(t.role_of(W), None);
    }

    #[test]
    fn role_lines_give_each_token_its_role() {
        let text = format!("# roles\nadmin {A}\n\nread-only   {R}\nsubmitter {S}\n");
        let t = Tokens::parse(&text, Path::new("t")).unwrap();
        assert_eq!(t.role_of(S), Some(Role::Submitter));
        assert_eq!(t.role_of(A), Some(Role::Admin));
        assert_eq!(t.role_of(W), None);
        assert_eq!(t.role_of(R), Some(Role::ReadOnly));
        assert_eq!(t.role_of("admin"), None);
    }

    #[test]
    fn a_role_file_gives_each_line_that_role() {
        let text = format!("# workers\n{W}\n\n{R}\n");
        let t = Tokens::parse_role_file(&text, Path::new("w"), Role::Worker).unwrap();
        assert_eq!(t.role_of(W), Some(Role::Worker));
        assert_eq!(t.role_of(R), Some(Role::Worker));
        assert_eq!(t.role_of(A), None);
        // A file emptied of tokens gives the role none (it revokes them).
        let none = Tokens::parse_role_file("# none\n", Path::new("w"), Role::Worker).unwrap();
        assert_eq!((none.count(Role::Worker), none.role_of(W)), (0, None));
    }

    #[test]
    fn a_token_in_two_files_is_refused() {
        let a = Tokens::parse(&format!("{A}\n"), Path::new("a")).unwrap();
        let w = Tokens::parse_role_file(&format!("{A}\n"), Path::new("w"), Role::Worker).unwrap();
        let err = a.merge(w, Path::new("w")).unwrap_err().to_string();
        assert!(err.contains("also in another token file"), "{err}");
    }

    #[test]
    fn only_worker_and_admin_roles_may_work_and_workers_may_not_read() {
        use Role::*;
        let table = [
            (ReadOnly, true, false, false),
            (Worker, false, false, true),
            (Submitter, true, true, false),
            (Admin, true, true, true),
        ];
        for (role, read, change, work) in table {
            assert_eq!(role.may_read(), read, "{role:?}");
            assert_eq!(role.may_change(), change, "{role:?}");
            assert_eq!(role.may_work(), work, "{role:?}");
        }
    }

    #[test]
    fn bad_token_files_are_refused_naming_the_line() {
        for (text, expect) in [
            ("", "holds no token"),
            (
                "boss admin-token-0123456789\n",
                "t:1: unknown role \"boss\"",
            ),
            ("admin short\n", "t:1: a token must be"),
            (
                &format!("admin {A}\nsubmitter {A}\n") as &str,
                "t:2: this token is listed twice",
            ),
            (&format!("admin {A} extra\n"), "t:1: expected `ROLE TOKEN`"),
        ] {
            let err = Tokens::parse(text, Path::new("t")).unwrap_err().to_string();
            assert!(err.contains(expect), "{text:?}: {err}");
        }
    }

    /// `worker` meant "submits and controls jobs" before the fleet: an old
    /// file must not silently give those clients the worker service.
    #[test]
    fn a_worker_line_in_the_token_file_is_refused_naming_submitter_and_the_worker_file() {
        let text = format!("admin {A}\nworker {W}\n");
        let err = Tokens::parse(&text, Path::new("t"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("t:2: a `worker` line is not taken here"),
            "{err}"
        );
        assert!(
            err.contains("submitter TOKEN") && err.contains("--worker-token-file"),
            "{err}"
        );
    }
}
