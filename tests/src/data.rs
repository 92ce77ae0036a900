//! Inputs with unique ids, and what a correct run must produce from them.

/// A CSV of customers `1..=n` for the `validate-customers` kind. Every row
/// whose id satisfies `is_bad` has a bad email and must end in `errors`.
pub struct Customers {
    pub n: u64,
    pub csv: String,
}

pub const HEADER: &str = "id,name,email";

/// Rows made to fail: about one in thirteen.
pub fn is_bad(id: u64) -> bool {
    id % 13 == 5
}

impl Customers {
    pub fn new(n: u64) -> Customers {
        let mut csv = String::with_capacity(n as usize * 40);
        csv.push_str(HEADER);
        csv.push('\n');
        for id in 1..=n {
            csv.push_str(&Customers::row(id));
            csv.push('\n');
        }
        Customers { n, csv }
    }

    /// The input row of `id`.
    pub fn row(id: u64) -> String {
        if is_bad(id) {
            format!("{id},Name {id},user{id}-at-example")
        } else {
            format!("{id},Name {id},User{id}@Example.COM")
        }
    }

    /// The output rows a correct run writes (header first), in input order.
    pub fn expected_output(&self) -> Vec<String> {
        let mut out = vec![HEADER.to_string()];
        out.extend(
            (1..=self.n)
                .filter(|&id| !is_bad(id))
                .map(|id| format!("{id},Name {id},user{id}@example.com")),
        );
        out
    }

    /// The ids that must be in `errors`, each once.
    pub fn bad_ids(&self) -> Vec<u64> {
        (1..=self.n).filter(|&id| is_bad(id)).collect()
    }

    pub fn good_count(&self) -> u64 {
        self.n - self.bad_ids().len() as u64
    }
}

/// Plain lines `line-000001` .. for the `copy` and `exec` kinds; ids in
/// `bad` get a `-BAD` suffix (an exec command can fail their slice).
pub fn lines(n: u64, bad: impl Fn(u64) -> bool) -> Vec<String> {
    (1..=n)
        .map(|i| {
            if bad(i) {
                format!("line-{i:06}-BAD")
            } else {
                format!("line-{i:06}")
            }
        })
        .collect()
}
