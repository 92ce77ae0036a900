//! Realistic CSV records of about 100 bytes, generated deterministically so
//! every run and every scenario works on the same bytes.

const FIRST: &[&str] = &[
    "Maria",
    "John",
    "Aiko",
    "Oluwaseun",
    "Lena",
    "Carlos",
    "Priya",
    "Mohammed",
    "Sofia",
    "Chen",
    "Fatima",
    "Lucas",
    "Anna",
    "Dmitri",
    "Grace",
    "Mateo",
];
const LAST: &[&str] = &[
    "Gonzalez",
    "Smith",
    "Tanaka",
    "Adeyemi",
    "Novak",
    "Silva",
    "Sharma",
    "Haddad",
    "Rossi",
    "Wang",
    "Khan",
    "Martin",
    "Kowalska",
    "Ivanov",
    "Okafor",
    "Fernandez",
];
const CITIES: &[(&str, &str)] = &[
    ("Valencia", "ES"),
    ("Chicago", "US"),
    ("Osaka", "JP"),
    ("Lagos", "NG"),
    ("Prague", "CZ"),
    ("Porto", "PT"),
    ("Pune", "IN"),
    ("Beirut", "LB"),
    ("Milan", "IT"),
    ("Shenzhen", "CN"),
    ("Karachi", "PK"),
    ("Lyon", "FR"),
    ("Krakow", "PL"),
    ("Kazan", "RU"),
    ("Abuja", "NG"),
    ("Rosario", "AR"),
];
const DOMAINS: &[&str] = &["example.com", "mail.test", "corp.example", "post.invalid"];

/// Small, fast, deterministic generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next_u64() % items.len() as u64) as usize]
    }
}

/// Record number `n` of the customer file, e.g.
/// `1000042,Maria,Gonzalez,maria.gonzalez42@example.com,+34 655 123 987,Valencia,ES,1234.56,2024-03-17`.
pub fn record(n: u64) -> Vec<u8> {
    let mut rng = Rng::new(n + 1);
    let first = rng.pick(FIRST);
    let last = rng.pick(LAST);
    let (city, country) = rng.pick(CITIES);
    let domain = rng.pick(DOMAINS);
    let r = rng.next_u64();
    let amount_cents = r % 1_000_000;
    let phone = (r >> 20) % 1_000_000_000;
    let day = 1 + (r >> 50) % 28;
    let month = 1 + (r >> 40) % 12;
    format!(
        "{},{first},{last},{}.{}{}@{domain},+{} {:03} {:03} {:03},{city},{country},{}.{:02},2024-{month:02}-{day:02}",
        1_000_000 + n,
        first.to_ascii_lowercase(),
        last.to_ascii_lowercase(),
        n % 1000,
        10 + (r >> 8) % 80,
        phone / 1_000_000,
        phone / 1000 % 1000,
        phone % 1000,
        amount_cents / 100,
        amount_cents % 100,
    )
    .into_bytes()
}

/// Records `start..start+count`.
pub fn records(start: u64, count: usize) -> Vec<Vec<u8>> {
    (start..start + count as u64).map(record).collect()
}

/// Mean length in bytes of the first `sample` records.
pub fn mean_record_bytes(sample: u64) -> f64 {
    let total: usize = (0..sample).map(|n| record(n).len()).sum();
    total as f64 / sample.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_about_100_bytes_of_csv_with_nine_fields() {
        let mean = mean_record_bytes(10_000);
        assert!((85.0..=115.0).contains(&mean), "mean {mean}");
        let r = String::from_utf8(record(42)).unwrap();
        assert_eq!(r.split(',').count(), 9, "{r}");
    }

    #[test]
    fn records_are_deterministic_and_distinct() {
        assert_eq!(record(7), record(7));
        assert_ne!(record(7), record(8));
    }
}
