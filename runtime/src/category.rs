//! Output categories beyond `main` and `errors`: their names, the streams
//! they are stored under, and [`Output`], what a handler writes records to.
//!
//! A sliced job declares its categories when it is created
//! (`JobSpec::with_categories`); the list never changes afterwards, and
//! category `n` of the list is stored under stream
//! [`CATEGORY_STREAM_BASE`]` + n`. A handler emits to a category by name
//! ([`Output::emit`]); a name the job did not declare is an error of that
//! record, never a silently lost record.

use std::fmt;
use std::str::FromStr;

use crate::{HandlerError, JobContext, RuntimeError};

/// Streams 0..=3 are input, main, errors and rejects, 4 is reserved for
/// slice info and 5..=15 for the runtime's future use; category `n` of a
/// job is stream `16 + n`.
pub const CATEGORY_STREAM_BASE: u32 = 16;

/// The most categories one job may declare.
pub const MAX_CATEGORIES: usize = 64;

/// The longest category name, in bytes.
pub const MAX_CATEGORY_NAME_BYTES: usize = 32;

/// A run of records.
type Records = Vec<Vec<u8>>;

/// The category number whose records stream `stream` holds, if any.
pub(crate) fn index_of_stream(stream: u32) -> Option<usize> {
    let n = stream.checked_sub(CATEGORY_STREAM_BASE)? as usize;
    (n < MAX_CATEGORIES).then_some(n)
}

/// The store stream of a job's category number `index`.
pub(crate) fn category_stream(index: usize) -> u32 {
    debug_assert!(index < MAX_CATEGORIES);
    CATEGORY_STREAM_BASE + index as u32
}

/// A valid category name: 1 to 32 bytes of `[a-z0-9_-]`, neither `main`
/// nor `errors` (nor `input`), kept inline so that `Category` stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CategoryName {
    len: u8,
    bytes: [u8; MAX_CATEGORY_NAME_BYTES],
}

impl CategoryName {
    /// Checks `name` against the rules, with an error that says what to do.
    pub fn new(name: &str) -> Result<CategoryName, RuntimeError> {
        check_name(name)?;
        let mut bytes = [0u8; MAX_CATEGORY_NAME_BYTES];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Ok(CategoryName {
            len: name.len() as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored (check_name).
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).expect("names are ASCII")
    }
}

impl fmt::Debug for CategoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for CategoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CategoryName {
    type Err = RuntimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CategoryName::new(s)
    }
}

impl serde::Serialize for CategoryName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for CategoryName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CategoryName::new(&s).map_err(serde::de::Error::custom)
    }
}

fn check_name(name: &str) -> Result<(), RuntimeError> {
    let bad = |why: &str| {
        RuntimeError::Invalid(format!(
            "category name {name:?} {why}; a category name is 1 to {MAX_CATEGORY_NAME_BYTES} \
             characters of a-z, 0-9, `_` and `-`, and not `main`, `errors` or `input`"
        ))
    };
    if name.is_empty() {
        return Err(bad("is empty"));
    }
    if name.len() > MAX_CATEGORY_NAME_BYTES {
        return Err(bad(&format!("is {} bytes long", name.len())));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
    {
        return Err(bad(&format!("has the character {c:?}")));
    }
    if matches!(name, "main" | "errors" | "input") {
        return Err(bad("is taken by the runtime"));
    }
    Ok(())
}

/// Checks a job's category list: every name valid, none twice, at most
/// [`MAX_CATEGORIES`].
pub(crate) fn check_categories(names: &[String]) -> Result<(), RuntimeError> {
    if names.len() > MAX_CATEGORIES {
        return Err(RuntimeError::Invalid(format!(
            "{} categories declared; a job may have at most {MAX_CATEGORIES}",
            names.len()
        )));
    }
    for (i, name) in names.iter().enumerate() {
        check_name(name)?;
        if names[..i].contains(name) {
            return Err(RuntimeError::Invalid(format!(
                "category {name:?} is declared twice; name each category once"
            )));
        }
    }
    Ok(())
}

/// What a handler writes for its records: `main` and the job's declared
/// categories. The default `process_slice` hands one to
/// `RecordHandler::process_to` per record (a failing record's output is
/// dropped, in every category); a handler that overrides `process_slice`
/// makes one with [`Output::for_job`] and returns it in
/// `SliceOutcome::Categorized`.
#[derive(Debug)]
pub struct Output {
    /// Records for `main`.
    pub main: Vec<Vec<u8>>,
    names: Vec<String>,
    by_category: Vec<Vec<Vec<u8>>>,
}

/// How much an `Output` held at a point, to drop what a failing record wrote.
pub(crate) struct OutputMark {
    main: usize,
    by_category: Vec<usize>,
}

impl Output {
    /// An empty output for `job`'s categories.
    pub fn for_job(job: &JobContext<'_>) -> Output {
        Output {
            main: Vec::new(),
            names: job.categories.to_vec(),
            by_category: vec![Vec::new(); job.categories.len()],
        }
    }

    /// A record for `main`.
    pub fn push(&mut self, record: Vec<u8>) {
        self.main.push(record);
    }

    /// A record for `category` (`main` is `push`). A category the job did
    /// not declare is an error: the record it came from fails.
    pub fn emit(&mut self, category: &str, record: Vec<u8>) -> Result<(), HandlerError> {
        if category == "main" {
            self.main.push(record);
            return Ok(());
        }
        match self.names.iter().position(|n| n == category) {
            Some(i) => {
                self.by_category[i].push(record);
                Ok(())
            }
            None => Err(HandlerError(format!(
                "category {category:?} is not one of this job's categories ({}); declare it \
                 when the job is created (JobSpec::with_categories)",
                if self.names.is_empty() {
                    "it has none".to_string()
                } else {
                    self.names.join(", ")
                }
            ))),
        }
    }

    /// Adds `other`'s records (an output for the same job) after this one's.
    pub fn append(&mut self, other: Output) {
        assert_eq!(
            self.names, other.names,
            "appending the output of another job's categories"
        );
        self.main.extend(other.main);
        for (mine, theirs) in self.by_category.iter_mut().zip(other.by_category) {
            mine.extend(theirs);
        }
    }

    /// The categories this output was built for.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The records emitted to `category` so far (empty for an undeclared one).
    pub fn category(&self, category: &str) -> &[Vec<u8>] {
        match self.names.iter().position(|n| n == category) {
            Some(i) => &self.by_category[i],
            None => &[],
        }
    }

    pub(crate) fn mark(&self) -> OutputMark {
        OutputMark {
            main: self.main.len(),
            by_category: self.by_category.iter().map(Vec::len).collect(),
        }
    }

    pub(crate) fn truncate(&mut self, mark: &OutputMark) {
        self.main.truncate(mark.main);
        for (records, len) in self.by_category.iter_mut().zip(&mark.by_category) {
            records.truncate(*len);
        }
    }

    /// `main`, then the records of category `n` at index `n`; None when
    /// this output was built for categories other than `names` (another
    /// job's), so no record can land in the wrong stream.
    pub(crate) fn into_parts(self, names: &[String]) -> Option<(Records, Vec<Records>)> {
        (self.names == names).then_some((self.main, self.by_category))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_names_are_checked_with_a_clear_error() {
        for good in ["valid", "review", "rejected_2", "a-b", &"x".repeat(32)] {
            assert_eq!(CategoryName::new(good).unwrap().as_str(), good);
        }
        for (bad, why) in [
            ("", "is empty"),
            ("Review", "character 'R'"),
            ("a b", "character ' '"),
            ("main", "taken by the runtime"),
            ("errors", "taken by the runtime"),
            (&"x".repeat(33), "33 bytes long"),
        ] {
            let err = CategoryName::new(bad).unwrap_err().to_string();
            assert!(
                err.contains(why) && err.contains("a-z, 0-9"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn a_category_declared_twice_is_refused() {
        let names = vec!["valid".to_string(), "valid".to_string()];
        let err = check_categories(&names).unwrap_err().to_string();
        assert!(err.contains("declared twice"), "{err}");
    }
}
