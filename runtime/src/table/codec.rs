//! Little-endian reading and writing for the table's binary records
//! (`row.rs`, `slice_map.rs`): every read is bounds-checked, so a cut or
//! flipped record is an error, never a panic.

use serde_json::Value;

pub struct Writer(pub Vec<u8>);

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// u32 length ++ bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    /// u32 count ++ the values.
    pub fn u64s(&mut self, v: &[u64]) {
        self.u32(v.len() as u32);
        for x in v {
            self.u64(*x);
        }
    }
    /// JSON as `bytes`; null is written as length 0.
    pub fn json(&mut self, v: &Value) {
        if v.is_null() {
            self.u32(0);
        } else {
            self.bytes(&serde_json::to_vec(v).expect("a JSON value serializes"));
        }
    }
}

pub struct Reader<'a> {
    pub bytes: &'a [u8],
    pub at: usize,
    /// What is being read, for errors ("row", "slice map").
    pub what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { bytes, at: 0, what }
    }

    pub fn err(&self, why: impl std::fmt::Display) -> String {
        format!("{} at byte {}: {why}", self.what, self.at)
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                self.err(format!(
                    "cut short ({} bytes left, {n} needed)",
                    self.bytes.len() - self.at
                ))
            })?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    pub fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    pub fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    /// u32 count ++ that many u64s; the count is checked against the
    /// bytes left before anything is allocated.
    pub fn u64s(&mut self) -> Result<Vec<u64>, String> {
        let n = self.u32()? as usize;
        let raw = self.take(
            n.checked_mul(8)
                .ok_or_else(|| self.err("count overflows"))?,
        )?;
        Ok(raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect())
    }
    pub fn string(&mut self) -> Result<String, String> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|e| self.err(format!("text is not UTF-8 ({e})")))
    }
    pub fn json(&mut self) -> Result<Value, String> {
        let b = self.bytes()?;
        if b.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(b).map_err(|e| self.err(format!("bad JSON ({e})")))
    }
    /// Every byte was read.
    pub fn end(&self) -> Result<(), String> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(self.err(format!("{} bytes past the end", self.bytes.len() - self.at)))
        }
    }
}
