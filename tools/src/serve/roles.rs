//! Token roles (DESIGN.md G13): what a caller may do, decided by the token
//! it presents.
//!
//! The token file holds one token (an `admin`, as before roles existed) or
//! lines `ROLE TOKEN`:
//!
//! ```text
//! # role      token
//! admin       Zm9vYmFyYmF6cXV4cXV1eA
//! worker      d29ya2VyLXRva2VuLTAxMjM0NQ
//! read-only   cmVhZC1vbmx5LXRva2VuLTAx
//! ```

use std::path::Path;

use anyhow::bail;

/// A token shorter than this is refused as guessable.
pub const MIN_TOKEN_CHARS: usize = 16;

/// What a caller may do; each role may do everything the one before may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// `GET` and `HEAD` only.
    ReadOnly,
    /// Also submit, upload, change and control jobs that run no command.
    Worker,
    /// Also submit jobs that run a command (`exec`, allowed commands only).
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::ReadOnly => "read-only",
            Role::Worker => "worker",
            Role::Admin => "admin",
        }
    }

    fn parse(word: &str) -> Option<Role> {
        match word {
            "read-only" => Some(Role::ReadOnly),
            "worker" => Some(Role::Worker),
            "admin" => Some(Role::Admin),
            _ => None,
        }
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
                            "{}:{n}: expected `ROLE TOKEN` (ROLE is admin, worker or read-only), \
                             or a file holding only one token",
                            path.display()
                        );
                    };
                    let Some(role) = Role::parse(role) else {
                        bail!(
                            "{}:{n}: unknown role {role:?}; use admin, worker or read-only",
                            path.display()
                        );
                    };
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

    #[test]
    fn a_file_with_one_token_makes_it_admin() {
        let t = Tokens::parse(&format!("{A}\n"), Path::new("t")).unwrap();
        assert_eq!(t.role_of(A), Some(Role::Admin));
        assert_eq!(t.role_of(W), None);
    }

    #[test]
    fn role_lines_give_each_token_its_role() {
        let text = format!("# roles\nadmin {A}\n\nworker   {W}\nread-only {R}\n");
        let t = Tokens::parse(&text, Path::new("t")).unwrap();
        assert_eq!(t.role_of(A), Some(Role::Admin));
        assert_eq!(t.role_of(W), Some(Role::Worker));
        assert_eq!(t.role_of(R), Some(Role::ReadOnly));
        assert_eq!(t.role_of("admin"), None);
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
                &format!("admin {A}\nworker {A}\n") as &str,
                "t:2: this token is listed twice",
            ),
            (&format!("admin {A} extra\n"), "t:1: expected `ROLE TOKEN`"),
        ] {
            let err = Tokens::parse(text, Path::new("t")).unwrap_err().to_string();
            assert!(err.contains(expect), "{text:?}: {err}");
        }
    }
}
