//! `validate-customers`: the demo's per-record work on a CSV of customers.
//! Each field is trimmed, the email lower-cased; a row with an empty
//! required column or an email that is not `local@domain.tld` is a record
//! error (it goes to the job's `errors` with `--collect-errors`).

use booster_runtime::{HandlerError, JobContext, RecordHandler, SliceOutcome};

use crate::formats::props;

/// Columns that must be present in the header and non-empty in every row.
pub const REQUIRED_COLUMNS: [&str; 3] = ["id", "name", "email"];

pub struct ValidateCustomers;

struct Schema {
    columns: usize,
    required: Vec<(usize, &'static str)>,
    email: usize,
}

impl Schema {
    fn from_properties(properties: &serde_json::Value) -> Result<Schema, String> {
        let columns: Vec<&str> = properties
            .get(props::CSV_COLUMNS)
            .and_then(|c| c.as_array())
            .ok_or("validate-customers needs CSV input with a header row")?
            .iter()
            .map(|c| c.as_str().unwrap_or(""))
            .collect();
        let find = |name: &str| columns.iter().position(|c| c.eq_ignore_ascii_case(name));
        let mut required = Vec::new();
        for name in REQUIRED_COLUMNS {
            let index =
                find(name).ok_or_else(|| format!("the CSV header has no `{name}` column"))?;
            required.push((index, name));
        }
        let email = find("email").expect("email is a required column");
        Ok(Schema {
            columns: columns.len(),
            required,
            email,
        })
    }

    /// The normalised fields, or the reason the row is rejected.
    fn check(&self, row: &csv::ByteRecord) -> Result<Vec<String>, String> {
        if row.len() != self.columns {
            return Err(format!(
                "malformed CSV: {} fields where the header has {}",
                row.len(),
                self.columns
            ));
        }
        let mut fields = Vec::with_capacity(row.len());
        for field in row.iter() {
            let text =
                std::str::from_utf8(field).map_err(|_| "a field is not UTF-8".to_string())?;
            fields.push(text.trim().to_string());
        }
        for (index, name) in &self.required {
            if fields[*index].is_empty() {
                return Err(format!("missing required column {name}"));
            }
        }
        let email = fields[self.email].to_lowercase();
        if !is_valid_email(&email) {
            return Err("bad email address".into());
        }
        fields[self.email] = email;
        Ok(fields)
    }
}

/// `local@domain.tld`: one `@`, no spaces, a dot inside the domain.
pub fn is_valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let ok_chars = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._%+-'".contains(&b))
    };
    !local.is_empty()
        && ok_chars(local)
        && ok_chars(domain)
        && !domain.contains('@')
        && domain.split('.').count() >= 2
        && domain.split('.').all(|part| !part.is_empty())
}

fn parse_row(record: &[u8]) -> Result<csv::ByteRecord, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .buffer_capacity(record.len().max(64) + 1)
        .from_reader(record);
    let mut row = csv::ByteRecord::new();
    match reader.read_byte_record(&mut row) {
        Ok(true) => Ok(row),
        Ok(false) => Err("empty record".into()),
        Err(e) => Err(format!("malformed CSV: {e}")),
    }
}

/// Parses a whole slice with one CSV reader (the uploader checked each
/// record is one complete row); None if the rows do not line up, and the
/// caller parses record by record.
fn parse_slice(records: &[Vec<u8>]) -> Option<Vec<csv::ByteRecord>> {
    let total: usize = records.iter().map(|r| r.len() + 1).sum();
    let mut joined = Vec::with_capacity(total);
    for record in records {
        joined.extend_from_slice(record);
        joined.push(b'\n');
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(joined.as_slice());
    let mut rows = Vec::with_capacity(records.len());
    for row in reader.byte_records() {
        rows.push(row.ok()?);
    }
    (rows.len() == records.len()).then_some(rows)
}

fn encode_rows(rows: &[Vec<String>]) -> Vec<Vec<u8>> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::with_capacity(rows.len() * 96));
    let mut ends = Vec::with_capacity(rows.len());
    for row in rows {
        writer.write_record(row).expect("writing CSV to memory");
        writer.flush().expect("writing CSV to memory");
        ends.push(writer.get_ref().len());
    }
    let bytes = writer.into_inner().expect("writing CSV to memory");
    let mut start = 0;
    ends.into_iter()
        .map(|end| {
            let row = bytes[start..end - 1].to_vec();
            start = end;
            row
        })
        .collect()
}

impl RecordHandler for ValidateCustomers {
    fn process(
        &self,
        job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        let schema = Schema::from_properties(job.properties)?;
        let fields = schema.check(&parse_row(record)?)?;
        out.extend(encode_rows(&[fields]));
        Ok(())
    }

    fn process_slice(&self, job: &JobContext<'_>, records: &[Vec<u8>]) -> SliceOutcome {
        let schema = match Schema::from_properties(job.properties) {
            Ok(schema) => schema,
            Err(message) => return SliceOutcome::Failed { message },
        };
        let parsed: Vec<Result<csv::ByteRecord, String>> = match parse_slice(records) {
            Some(rows) => rows.into_iter().map(Ok).collect(),
            None => records.iter().map(|r| parse_row(r)).collect(),
        };
        let mut good = Vec::with_capacity(records.len());
        let mut record_errors = Vec::new();
        for (index, row) in parsed.into_iter().enumerate() {
            match row.and_then(|row| schema.check(&row)) {
                Ok(fields) => good.push(fields),
                Err(message) => record_errors.push((index, message)),
            }
        }
        SliceOutcome::Done {
            output: encode_rows(&good),
            record_errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(records: &[&str]) -> (Vec<String>, Vec<(usize, String)>) {
        let properties = json!({ "csv_columns": ["id", "name", "email", "city"] });
        let job = JobContext::new(1, "validate-customers", &properties, &[]);
        let records: Vec<Vec<u8>> = records.iter().map(|r| r.as_bytes().to_vec()).collect();
        match ValidateCustomers.process_slice(&job, &records) {
            SliceOutcome::Done {
                output,
                record_errors,
            } => (
                output
                    .into_iter()
                    .map(|o| String::from_utf8(o).unwrap())
                    .collect(),
                record_errors,
            ),
            SliceOutcome::Failed { message } => panic!("{message}"),
            SliceOutcome::Categorized { .. } => panic!("validate writes main only"),
        }
    }

    #[test]
    fn rows_are_trimmed_and_emails_lower_cased() {
        let (out, errors) = run(&[" 1 , Ann ,  Ann@Example.COM ,\"Paris, FR\""]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(out, vec!["1,Ann,ann@example.com,\"Paris, FR\""]);
    }

    #[test]
    fn bad_email_and_missing_column_are_record_errors() {
        let (out, errors) = run(&["1,Ann,ann.example.com,x", "2,,b@c.de,y", "3,Bo,bo@c.de,z"]);
        assert_eq!(out, vec!["3,Bo,bo@c.de,z"]);
        assert_eq!(
            errors,
            vec![
                (0, "bad email address".to_string()),
                (1, "missing required column name".to_string())
            ]
        );
    }

    #[test]
    fn email_rules() {
        assert!(is_valid_email("a.b+c@d-e.co.uk"));
        for bad in ["", "a", "a@b", "@b.c", "a@b.", "a b@c.d", "a@@b.c", "a@.c"] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }
}
