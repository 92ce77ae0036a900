//! Synthetic customer records for the demo, with deliberately bad rows
//! planted at known places so the demo can reconcile its counts.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::formats::{Compression, Encoder};

pub const HEADER: &str = "id,name,email,country,signup_date,balance";

const FIRST: [&str; 16] = [
    "Ana", "Bruno", "Chen", "Dara", "Elif", "Femi", "Greta", "Hiro", "Ines", "Jonas", "Kofi",
    "Lena", "Mateo", "Nadia", "Omar", "Priya",
];
/// (as written in the name, as written in the email address)
const LAST: [(&str, &str); 16] = [
    ("Silva", "Silva"),
    ("Okafor", "Okafor"),
    ("Nguyễn", "Nguyen"),
    ("Müller", "Mueller"),
    ("Kowalski", "Kowalski"),
    ("Haddad", "Haddad"),
    ("Tanaka", "Tanaka"),
    ("Rossi", "Rossi"),
    ("Dubois", "Dubois"),
    ("Larsen", "Larsen"),
    ("Mensah", "Mensah"),
    ("Novák", "Novak"),
    ("García", "Garcia"),
    ("Ivanova", "Ivanova"),
    ("Khan", "Khan"),
    ("Patel", "Patel"),
];
const DOMAINS: [&str; 6] = [
    "Example.com",
    "mail.example.org",
    "corp.example.net",
    "EXAMPLE.io",
    "inbox.example.co.uk",
    "example.de",
];
const COUNTRIES: [&str; 8] = ["PT", "NG", "VN", "DE", "PL", "LB", "JP", "IT"];

/// What was generated, to reconcile against.
#[derive(Clone, Debug, Default)]
pub struct Generated {
    pub records: u64,
    /// Uncompressed size of the CSV, header included.
    pub raw_bytes: u64,
    pub bad_emails: u64,
    pub missing_names: u64,
    /// Rows with a field too many: rejected by the CSV reader at upload.
    pub malformed: u64,
    /// Strings from records (emails, both as written and as normalised),
    /// none of which may appear in clear under an encrypted data directory.
    pub samples: Vec<String>,
}

impl Generated {
    pub fn planted(&self) -> u64 {
        self.bad_emails + self.missing_names + self.malformed
    }

    /// "1 bad email, 0 missing names, 2 malformed rows".
    pub fn planted_text(&self) -> String {
        use crate::report::plural;
        format!(
            "{}, {}, {}",
            plural(self.bad_emails, "bad email"),
            plural(self.missing_names, "missing name"),
            plural(self.malformed, "malformed row")
        )
    }
}

/// xorshift64*: deterministic, good enough for made-up customers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// Writes `records` customer rows (compressed by `path`'s extension);
/// with `plant_bad`, one row in 1000 has a bad email, one in 2500 no
/// name, and one in 100,000 a field too many. Every core generates and
/// compresses a range of ids; the ranges are concatenated as gzip members
/// or zstd frames, which readers take as one stream.
pub fn generate(
    path: &Path,
    records: u64,
    seed: u64,
    plant_bad: bool,
) -> anyhow::Result<Generated> {
    let compression = Compression::from_path(path);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let per_thread = records.div_ceil(threads.clamp(1, 8)).max(1);
    let sample_every = (records / 24).max(1);
    let ranges: Vec<(u64, u64)> = (0..threads.clamp(1, 8))
        .map(|t| (1 + t * per_thread, ((t + 1) * per_thread).min(records)))
        .filter(|(first, last)| first <= last)
        .collect();
    let parts: Vec<anyhow::Result<(Vec<u8>, Generated)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = ranges
            .iter()
            .map(|&(first, last)| {
                let rng = Rng((seed ^ first.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
                scope.spawn(move || {
                    let mut out = Encoder::new(compression, Vec::new())?;
                    let gen = write_rows(&mut out, first..=last, rng, plant_bad, sample_every)?;
                    Ok((out.finish()?, gen))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("generator thread panicked"))
            .collect()
    });
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    let mut header = Encoder::new(compression, Vec::new())?;
    header.write_all(format!("{HEADER}\n").as_bytes())?;
    file.write_all(&header.finish()?)?;
    let mut gen = Generated {
        records,
        raw_bytes: HEADER.len() as u64 + 1,
        ..Generated::default()
    };
    for part in parts {
        let (bytes, part) = part?;
        file.write_all(&bytes)?;
        gen.raw_bytes += part.raw_bytes;
        gen.bad_emails += part.bad_emails;
        gen.missing_names += part.missing_names;
        gen.malformed += part.malformed;
        gen.samples.extend(part.samples);
    }
    file.flush()?;
    Ok(gen)
}

fn write_rows(
    out: &mut Encoder<Vec<u8>>,
    ids: std::ops::RangeInclusive<u64>,
    mut rng: Rng,
    plant_bad: bool,
    sample_every: u64,
) -> anyhow::Result<Generated> {
    let mut gen = Generated::default();
    let mut row = Vec::with_capacity(160);
    for id in ids {
        row.clear();
        let first = rng.pick(&FIRST);
        let (last, last_ascii) = LAST[(rng.next() % LAST.len() as u64) as usize];
        let domain = rng.pick(&DOMAINS);
        let email = format!("{first}.{last_ascii}{id}@{domain}");
        let (name, email) = match id {
            _ if plant_bad && id % 1000 == 500 => {
                gen.bad_emails += 1;
                (format!("{first} {last}"), email.replace('@', " at "))
            }
            _ if plant_bad && id % 2500 == 1250 => {
                gen.missing_names += 1;
                (String::new(), email)
            }
            // Some names hold a comma, so the CSV quotes them.
            _ if id % 7 == 0 => (format!("\"{last}, {first}\""), email),
            // Some emails come padded and mixed-case, for the normaliser.
            _ if id % 5 == 0 => (format!("{first} {last}"), format!("  {email} ")),
            _ => (format!("{first} {last}"), email),
        };
        if id % sample_every == 0 && !name.is_empty() {
            gen.samples.push(email.trim().to_string());
            gen.samples.push(email.trim().to_lowercase());
        }
        write!(
            row,
            "{id},{name},{email},{},{}-{:02}-{:02},{}.{:02}",
            rng.pick(&COUNTRIES),
            2015 + rng.next() % 11,
            1 + rng.next() % 12,
            1 + rng.next() % 28,
            rng.next() % 100_000,
            rng.next() % 100
        )?;
        if plant_bad && id % 100_000 == 777 {
            gen.malformed += 1;
            row.extend_from_slice(b",unexpected extra field");
        }
        row.push(b'\n');
        gen.raw_bytes += row.len() as u64;
        out.write_all(&row)?;
    }
    Ok(gen)
}

/// True if `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planted_text_agrees_with_each_count() {
        let gen = Generated {
            records: 500,
            raw_bytes: 0,
            bad_emails: 1,
            missing_names: 0,
            malformed: 2,
            samples: Vec::new(),
        };
        assert_eq!(
            gen.planted_text(),
            "1 bad email, 0 missing names, 2 malformed rows"
        );
    }

    #[test]
    fn planted_rows_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.csv");
        let gen = generate(&path, 5000, 7, true).unwrap();
        assert_eq!(
            (gen.bad_emails, gen.missing_names, gen.malformed),
            (5, 2, 1)
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len() as u64, gen.raw_bytes);
        assert!(text.starts_with(HEADER));
        assert!(!gen.samples.is_empty());
        let gz = dir.path().join("c.csv.gz");
        let again = generate(&gz, 5000, 7, true).unwrap();
        let (mut reader, _) = crate::formats::open_bytes(&gz).unwrap();
        let mut unzipped = String::new();
        std::io::Read::read_to_string(&mut reader, &mut unzipped).unwrap();
        assert_eq!(
            unzipped, text,
            "the gzip members read back as the same rows"
        );
        assert_eq!(again.raw_bytes, gen.raw_bytes);
        assert!(gen
            .samples
            .iter()
            .all(|s| text.contains(s.as_str()) || s.chars().all(|c| !c.is_uppercase())));
    }
}
